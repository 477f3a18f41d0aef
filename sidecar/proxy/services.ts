import type { Registry } from 'prom-client';
import type { Logger } from '../../shared/log.js';
import type { PipelineServices, PodIdentity } from '../pipeline/types.js';
import type { Writable } from '../telemetry/audit-sink.js';
import type { TelemetryConfig } from '../telemetry/config.js';

// Process-lifetime services of the pipeline: created once when the proxy starts, handed to every pipeline build
// (a policy change rebuilds only the processors), closed when the proxy stops. A capability that needs one (a
// budget store, a credential source, a guard HTTP client) adds its option, its field on PipelineServices and its
// construction here.

export interface ServiceOptions {
  registry: Registry;
  log: Logger;
  /** OTLP export, audit log, content capture; nothing of it is loaded when none is enabled. */
  telemetry?: TelemetryConfig;
  identity?: PodIdentity;
  /** The operational log's stream (`--audit-log stdout` writes through it). */
  stdout?: Writable;
}

export interface ServiceSet {
  readonly services: PipelineServices;
  /** Stops every service (after the last exchange ended). */
  close(): Promise<void>;
}

export async function createServices(opts: ServiceOptions): Promise<ServiceSet> {
  const closers: (() => Promise<void> | void)[] = [];
  let telemetry: PipelineServices['telemetry'];
  if (opts.telemetry && (opts.telemetry.otlp || opts.telemetry.audit)) {
    const { createTelemetry } = await import('../telemetry/create.js');
    telemetry = await createTelemetry({ config: opts.telemetry, identity: opts.identity ?? {}, registry: opts.registry, log: opts.log, ...(opts.stdout && { stdout: opts.stdout }) });
    const { otlp, audit } = telemetry ?? {};
    if (otlp) closers.push(() => otlp.close());
    if (audit) closers.push(() => audit.close());
  }
  const services: PipelineServices = { registry: opts.registry, log: opts.log, now: Date.now, ...(telemetry && { telemetry }) };
  return {
    services,
    async close() {
      await Promise.allSettled(closers.map(async (c) => c()));
    },
  };
}
