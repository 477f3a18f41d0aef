import type { Registry } from 'prom-client';
import type { Logger } from '../../shared/log.js';
import { createBudgetServices } from '../budgets/service.js';
import { ClusterCredentialSource } from '../credentials/cluster-source.js';
import { DirCredentialSource } from '../credentials/dir-source.js';
import type { CredentialSource } from '../credentials/source.js';
import type { PipelineServices, PodIdentity } from '../pipeline/types.js';
import type { Writable } from '../telemetry/audit-sink.js';
import type { TelemetryConfig } from '../telemetry/config.js';

// Process-lifetime services of the pipeline: created once when the proxy starts, handed to every pipeline build
// (a policy change rebuilds only the processors), closed when the proxy stops. A capability that needs one (a
// budget store, a credential source, a guard HTTP client) adds its option, its field on PipelineServices and its
// construction here.

/** Where managed credentials come from: a directory (standalone), the control plane (cluster mode), or a given source. */
export type CredentialOption =
  | { kind: 'dir'; dir: string; pollMs?: number }
  | { kind: 'control-plane'; controlPlane: URL; tokenFile: string; caPem: string; longPollSeconds?: number }
  | { kind: 'source'; source: CredentialSource };

export interface ServiceOptions {
  registry: Registry;
  log: Logger;
  /** Shared budgets' Redis (`--redis-url`); without it only scope pod budgets can be counted. */
  redisUrl?: string;
  /** Redis password from a Secret (AIGRESS_REDIS_PASSWORD), overriding the URL's. */
  redisPassword?: string;
  /** This proxy's name in the shared store (the pod name). */
  proxyName?: string;
  credentials?: CredentialOption;
  /** OTLP export, audit log, content capture; nothing of it is loaded when none is enabled. */
  telemetry?: TelemetryConfig;
  identity?: PodIdentity;
  /** The operational log's stream (`--audit-log stdout` writes through it). */
  stdout?: Writable;
  /** --max-body-bytes, which also bounds a compressed request body once decoded. */
  maxBodyBytes?: number;
}

export interface ServiceSet {
  readonly services: PipelineServices;
  /** Stops every service (after the last exchange ended). */
  close(): Promise<void>;
}

export async function createServices(opts: ServiceOptions): Promise<ServiceSet> {
  const budgets = createBudgetServices({
    registry: opts.registry,
    log: opts.log,
    now: Date.now,
    ...(opts.redisUrl !== undefined && { redisUrl: opts.redisUrl }),
    ...(opts.redisPassword !== undefined && { redisPassword: opts.redisPassword }),
    ...(opts.proxyName !== undefined && { proxyName: opts.proxyName }),
  });
  const closers: (() => Promise<void> | void)[] = [() => budgets.close()];
  let credentials: CredentialSource | undefined;
  if (opts.credentials?.kind === 'dir') {
    credentials = new DirCredentialSource({ dir: opts.credentials.dir, log: opts.log, pollMs: opts.credentials.pollMs });
  } else if (opts.credentials?.kind === 'control-plane') {
    const { controlPlane, tokenFile, caPem, longPollSeconds } = opts.credentials;
    credentials = new ClusterCredentialSource({ controlPlane, tokenFile, caPem, log: opts.log, longPollSeconds });
  } else if (opts.credentials?.kind === 'source') credentials = opts.credentials.source;
  if (credentials) closers.push(() => credentials.close());
  let telemetry: PipelineServices['telemetry'];
  if (opts.telemetry && (opts.telemetry.otlp || opts.telemetry.audit)) {
    const { createTelemetry } = await import('../telemetry/create.js');
    telemetry = await createTelemetry({ config: opts.telemetry, identity: opts.identity ?? {}, registry: opts.registry, log: opts.log, ...(opts.stdout && { stdout: opts.stdout }) });
    const { otlp, audit } = telemetry ?? {};
    if (otlp) closers.push(() => otlp.close());
    if (audit) closers.push(() => audit.close());
  }
  const services: PipelineServices = {
    registry: opts.registry,
    log: opts.log,
    now: Date.now,
    budgets,
    ...(credentials && { credentials }),
    ...(telemetry && { telemetry }),
    ...(opts.maxBodyBytes !== undefined && { maxBodyBytes: opts.maxBodyBytes }),
  };
  return {
    services,
    async close() {
      await Promise.allSettled(closers.map(async (c) => c()));
    },
  };
}
