import type { Registry } from 'prom-client';
import type { EgressPolicy } from '../../shared/policy/types.js';
import { pipelineContext } from './context.js';
import { describeProcessor } from './describe.js';
import { meteringRequestProcessor, meteringResponseProcessor } from './metering.js';
import { modelsProcessor } from './models.js';
import { streamUsageRequestProcessor, streamUsageResponseProcessor } from './openai-stream-usage.js';
import { regionsProcessor } from './regions.js';
import type { Pipeline } from './types.js';

export type * from './types.js';
export { identityLabelValues, IDENTITY_LABEL_NAMES } from './metrics.js';

/**
 * The ordered processors for a policy, compiled once per policy (never per request). The data-plane issue
 * ships it empty; provider awareness, regions, models, metering, filters and budgets each add a processor.
 */
export interface PipelineDeps {
  /** The proxy's metrics registry (served on the admin port); processors register their metrics here once. */
  registry: Registry;
}

/**
 * Request side, in order: `describe` (what the call is: facts for the log line and request counter), `regions`
 * (451), `models` (403), `metering` (asks upstream for an unencoded body), `openai-stream-usage` (asks OpenAI
 * for streamed usage). Response side: `metering` must see the upstream bytes before `openai-stream-usage`
 * strips what it asked for, so it comes first.
 */
export function buildPipeline(policy: EgressPolicy, deps: PipelineDeps): Pipeline {
  const ctx = pipelineContext(policy, deps.registry);
  return {
    request: [describeProcessor(ctx), regionsProcessor(ctx), modelsProcessor(ctx), meteringRequestProcessor(), streamUsageRequestProcessor()],
    response: [meteringResponseProcessor(ctx), streamUsageResponseProcessor()],
  };
}
