import { compileGlobs } from '../../shared/glob.js';
import type { PipelineContext } from './context.js';
import { CONTINUE, deny } from './deny.js';
import type { Processor } from './types.js';

/**
 * Holds calls to the models the policy allows (spec.models): a model matching a `deny` glob, or matching no
 * `allow` glob when there is an allow list, is answered 403 in the provider's error shape. A model is matched by
 * its name and its aliases (Bedrock's `anthropic.claude-…` also as `claude-…`); deny wins if any name matches.
 * With an allow list, a model-bearing operation whose model cannot be read is denied too (fail closed), and so it
 * is under a deny list when the body could not be decoded; calls that name no model (listing models, files…) pass.
 */
export function modelsProcessor(ctx: PipelineContext): Processor {
  const { allow, deny: denied } = ctx.policy.spec.models;
  const isAllowed = compileGlobs(allow);
  const isDenied = compileGlobs(denied);
  return {
    name: 'models',
    type: 'models',
    phase: 'admit',
    audit: ctx.audit,
    onRequest(ex) {
      if (allow.length === 0 && denied.length === 0) return CONTINUE;
      const d = ex.described;
      const model = d?.model;
      if (model === undefined) {
        // A body the proxy could not decode (request-encoding.ts) may be one the provider decodes: its model
        // would then pass a deny list unseen, so any model rule refuses it, not only an allow list.
        const undecoded = String(ex.facts.requestEncoding ?? '').startsWith('undecoded');
        if ((allow.length === 0 && !undecoded) || !d || d.operation === 'unknown') return CONTINUE;
        return deny('policy', 403, 'model_unknown', undecoded
          ? `aigress: the model of this ${d.operation} request cannot be determined (its content-encoding could not be decoded) and policy ${ctx.policyName} has model rules`
          : `aigress: the model of this ${d.operation} request cannot be determined and policy ${ctx.policyName} allows only listed models (allowed: ${allow.join(', ')})`);
      }
      const names = [model, ...(d?.modelAliases ?? [])];
      if (names.some(isDenied)) {
        return deny('policy', 403, 'model_denied', `aigress: model "${model}" is denied by policy ${ctx.policyName} (deny: ${denied.join(', ')})`);
      }
      if (allow.length > 0 && !names.some(isAllowed)) {
        return deny('policy', 403, 'model_not_allowed',
          `aigress: model "${model}" is not allowed by policy ${ctx.policyName} (allowed: ${allow.join(', ')})`);
      }
      return CONTINUE;
    },
  };
}
