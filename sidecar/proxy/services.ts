import type { Registry } from 'prom-client';
import type { Logger } from '../../shared/log.js';
import type { PipelineServices } from '../pipeline/types.js';

// Process-lifetime services of the pipeline: created once when the proxy starts, handed to every pipeline build
// (a policy change rebuilds only the processors), closed when the proxy stops. A capability that needs one (a
// budget store, a credential source, a guard HTTP client) adds its option, its field on PipelineServices and its
// construction here.

export interface ServiceOptions {
  registry: Registry;
  log: Logger;
}

export interface ServiceSet {
  readonly services: PipelineServices;
  /** Stops every service (after the last exchange ended). */
  close(): Promise<void>;
}

export function createServices(opts: ServiceOptions): ServiceSet {
  const services: PipelineServices = { registry: opts.registry, log: opts.log, now: Date.now };
  const closers: (() => Promise<void> | void)[] = [];
  return {
    services,
    async close() {
      await Promise.allSettled(closers.map(async (c) => c()));
    },
  };
}
