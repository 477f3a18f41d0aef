import { decideRegion } from '../../shared/regions.js';
import type { PipelineContext } from './context.js';
import { CONTINUE, deny } from './deny.js';
import type { Processor } from './types.js';

/**
 * Holds calls to the regions the policy allows (spec.regions): a call whose reach is not wholly allowed, or
 * whose region cannot be told while `unknown: deny`, is answered 451 in the provider's error shape before
 * anything leaves the pod.
 */
export function regionsProcessor(ctx: PipelineContext): Processor {
  const rules = ctx.policy.spec.regions;
  const allowed = rules.allow.length > 0 ? rules.allow.join(', ') : 'any known region';
  return {
    name: 'regions',
    type: 'regions',
    phase: 'admit',
    audit: ctx.audit,
    onRequest(ex) {
      const d = ex.described;
      const decision = decideRegion(d?.reach, rules);
      if (decision.allowed) return CONTINUE;
      if (decision.reason === 'region_unknown') {
        const why = d?.regionNote ? ` (${d.regionNote})` : '';
        return deny('region', 451, 'region_unknown',
          `aigress: the region of this call cannot be determined${why} and policy ${ctx.policyName} denies unknown regions (spec.regions.unknown: deny)`);
      }
      const via = d?.reach && d.reach.length > 1 ? `; this call may be served in: ${d.reach.join(', ')}` : '';
      const note = d?.regionNote && decision.place !== d.region ? ` via ${d.regionNote}` : '';
      return deny('region', 451, 'region_not_allowed',
        `aigress: region "${decision.place}"${note} is not allowed by policy ${ctx.policyName} (allowed: ${allowed}${via})`);
    },
  };
}
