import type { EgressPolicy } from '../../shared/policy/types.js';
import type { Pipeline } from './types.js';

export type * from './types.js';

/**
 * The ordered processors for a policy, compiled once per policy (never per request). The data-plane issue
 * ships it empty; provider awareness, regions, models, metering, filters and budgets each add a processor.
 */
export function buildPipeline(_policy: EgressPolicy): Pipeline {
  return { request: [], response: [] };
}
