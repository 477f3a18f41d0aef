import type { ProviderRequest, RequestDescription } from '../../shared/providers/types.js';
import type { PipelineContext } from './context.js';
import { CONTINUE } from './deny.js';
import type { Exchange, Processor } from './types.js';

const UNDESCRIBED: RequestDescription = { operation: 'unknown', stream: false };

/** The adapter's view of the request: the body's one shared JSON view, the app's headers. */
export function providerRequest(ex: Exchange): ProviderRequest {
  const { request: r } = ex;
  return { host: r.host, method: r.method, path: r.path, headers: ex.appHeaders, body: r.body.bytes(), json: () => r.body.json() };
}

/**
 * First step: asks the provider adapter what the request is, keeps the description on the exchange for the
 * others, and records the facts the proxy's request counter and log line use (operation, bounded model label).
 * Never denies; an adapter failure leaves an unknown operation and an unknown region, which the region rule then
 * judges.
 */
export function describeProcessor(ctx: PipelineContext): Processor {
  const azureResources = ctx.policy.spec.regions.azureResources;
  return {
    name: 'describe',
    type: 'describe',
    phase: 'describe',
    onRequest(ex) {
      const { adapter } = ex;
      let d: RequestDescription;
      try {
        d = adapter.describe(providerRequest(ex), { ...(azureResources && { azureResources }) });
      } catch {
        d = UNDESCRIBED;
        ex.facts.describeFailed = true;
      }
      ex.described = d;
      const f = ex.facts;
      f.provider = adapter.id;
      f.operation = d.operation;
      f.model = d.model?.slice(0, 256);
      f.modelLabel = ctx.labeler.label(adapter.id, d.model, d.modelAliases);
      f.region = d.region ?? 'unknown';
      if (d.reach && (d.reach.length !== 1 || d.reach[0] !== d.region)) f.regionReach = d.reach.join(',');
      f.stream = d.stream;
      return CONTINUE;
    },
  };
}
