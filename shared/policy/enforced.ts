import type { EgressPolicySpec } from './types.js';

// A governance tool must never silently ignore a rule. A policy field the schema accepts but no processor of
// this version enforces makes the whole policy invalid: `aigress proxy --policy` exits 1 naming the field, the
// controller sets Accepted=False with reason NotEnforced and keeps the last good policy, and a proxy refuses
// such a policy from the control plane. Each capability removes its field from this list when it lands.

/** The wording every refusal uses; checks outside the project look for it. */
export const NOT_ENFORCED_MESSAGE = 'not enforced by this version';

/** Fields accepted by the schema whose processor does not exist yet. */
export const NOT_ENFORCED_FIELDS: readonly (keyof EgressPolicySpec)[] = [];

/** One refusal per unenforced field the spec uses (a non-empty list counts; an empty one asks for nothing). */
export function notEnforced(
  spec: EgressPolicySpec,
  fields: readonly (keyof EgressPolicySpec)[] = NOT_ENFORCED_FIELDS,
): { path: string; message: string; reason: 'NotEnforced' }[] {
  const out: { path: string; message: string; reason: 'NotEnforced' }[] = [];
  for (const field of fields) {
    const v = spec[field];
    if (Array.isArray(v) ? v.length > 0 : v !== undefined) {
      out.push({ path: `spec.${field}`, message: `${NOT_ENFORCED_MESSAGE}; a policy that uses it is refused rather than silently ignored`, reason: 'NotEnforced' });
    }
  }
  return out;
}
