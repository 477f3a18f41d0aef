import type { EgressPolicy } from '../../shared/policy/types.js';
import { errorMessage } from '../../shared/errors.js';
import { pipelineContext } from './context.js';
import { PROCESSOR_KINDS } from './registry.js';
import { orderProcessors } from './runner.js';
import type { Pipeline, PipelineServices, Processor } from './types.js';

export type * from './types.js';
export { identityLabelValues, IDENTITY_LABEL_NAMES } from './metrics.js';
export type { StreamEvent } from './framing.js';
export { PipelineRunner, newExchange, type ResponseSink, type ResponseDriver, type RequestResult } from './runner.js';

/**
 * The ordered processors for a policy, compiled once per policy (never per request) from the processor kinds
 * (registry.ts). Process-lifetime services come from the proxy; `close()` frees what this build holds.
 */
export function buildPipeline(policy: EgressPolicy, services: PipelineServices): Pipeline {
  const ctx = pipelineContext(policy, services.registry);
  const built: Processor[] = [];
  for (const kind of PROCESSOR_KINDS) built.push(...kind.build(ctx, services));
  return pipelineOf(built, services);
}

/** A pipeline over `processors` (sorted by phase); tests build their own with it. */
export function pipelineOf(processors: readonly Processor[], services?: Pick<PipelineServices, 'log'>): Pipeline {
  const ordered = orderProcessors(processors);
  return {
    processors: ordered,
    async close() {
      await Promise.all(
        ordered.map(async (p) => {
          try {
            await p.close?.();
          } catch (err) {
            services?.log.error({ processor: p.name, err: errorMessage(err) }, 'processor failed to close');
          }
        }),
      );
    },
  };
}
