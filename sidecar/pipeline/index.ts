import type { Registry } from 'prom-client';
import type { EgressPolicy } from '../../shared/policy/types.js';
import type { Pipeline } from './types.js';

export type * from './types.js';

/**
 * The ordered processors for a policy, compiled once per policy (never per request). The data-plane issue
 * ships it empty; provider awareness, regions, models, metering, filters and budgets each add a processor.
 */
export interface PipelineDeps {
  /** The proxy's metrics registry (served on the admin port); processors register their metrics here once. */
  registry: Registry;
}

export function buildPipeline(_policy: EgressPolicy, _deps: PipelineDeps): Pipeline {
  return { request: [], response: [] };
}
