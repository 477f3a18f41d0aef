import { budgetProcessor } from './budget.js';
import type { PipelineContext } from './context.js';
import { credentialProcessors } from './credentials.js';
import { describeProcessor } from './describe.js';
import { buildFilters } from './filters/index.js';
import { meteringProcessor } from './metering.js';
import { modelsProcessor } from './models.js';
import { streamUsageProcessor } from './openai-stream-usage.js';
import { regionsProcessor } from './regions.js';
import { requestEncodingProcessor } from './request-encoding.js';
import type { PipelineServices, Processor } from './types.js';
import { telemetryProcessors } from '../telemetry/processor.js';

// Which processors a policy gets, keyed by processor type. Each kind builds its processors from the policy (none
// when the policy does not use it); the runner sorts them by phase, list order kept within a phase. A new
// capability adds one kind here and one file beside this one.

export interface ProcessorKind {
  readonly type: string;
  build(ctx: PipelineContext, services: PipelineServices): readonly Processor[];
}

const one = (type: string, make: (ctx: PipelineContext, services: PipelineServices) => Processor): ProcessorKind => ({
  type,
  build: (ctx, services) => [make(ctx, services)],
});

/**
 * In list order (which is also the order within a phase): filters rewrite before `openai-stream-usage` adds its
 * option to the rewritten body; metering only asks for an unencoded response.
 */
export const PROCESSOR_KINDS: readonly ProcessorKind[] = [
  // a compressed request body decoded before anything reads it (request-encoding.ts)
  one('request-encoding', (_ctx, services) => requestEncodingProcessor(services.maxBodyBytes)),
  one('describe', describeProcessor),
  one('regions', regionsProcessor),
  one('models', modelsProcessor),
  { type: 'budget', build: (ctx, services) => (ctx.policy.spec.budgets.length > 0 ? [budgetProcessor(ctx, services)] : []) },
  one('metering', meteringProcessor),
  { type: 'filters', build: buildFilters },
  one('stream-usage', () => streamUsageProcessor()),
  { type: 'credentials', build: credentialProcessors },
  // Spans, GenAI OTLP metrics and audit records; none unless the proxy enabled OTLP export or the audit log.
  // Its describe-phase step ends last (onEnd runs in reverse), after metering wrote the usage.
  { type: 'telemetry', build: telemetryProcessors },
];
