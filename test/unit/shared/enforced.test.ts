// A policy field the schema accepts but this version does not enforce is refused, never silently ignored.
import { describe, expect, it, vi } from 'vitest';
import { defaultPolicySpec, validatePolicy } from '../../../shared/policy/validate.js';
import { evaluateNamespace } from '../../../webhook/policy/controller.js';

// Every field of today's schema is enforced, so the mechanism is exercised as it was while filters, budgets and
// credentials were not: the module answers with those three listed (the real list is checked at the end).
const FIELDS = ['filters', 'budgets', 'credentials'] as const;
vi.mock('../../../shared/policy/enforced.js', async (importActual) => {
  const actual = await importActual<typeof import('../../../shared/policy/enforced.js')>();
  return { ...actual, notEnforced: (spec: Parameters<typeof actual.notEnforced>[0]) => actual.notEnforced(spec, FIELDS) };
});

const doc = (spec: Record<string, unknown>) => ({ apiVersion: 'aigress.io/v1alpha1', kind: 'EgressPolicy', metadata: { name: 'p', namespace: 'team-a' }, spec });

const SAMPLES: Record<string, unknown> = {
  filters: [{ type: 'regex', pattern: 'x', action: 'block' }],
  budgets: [{ tokens: 5, per: '1m', scope: 'pod' }],
  credentials: [{ provider: 'openai', secretRef: { name: 'k', key: 'v' } }],
};

describe('unenforced policy fields', () => {
  it.each(FIELDS.map((f) => [f]))('spec.%s is refused with its path and reason NotEnforced', (field) => {
    const r = validatePolicy(doc({ [field]: SAMPLES[field] }));
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.issues).toEqual([expect.objectContaining({ path: `spec.${field}`, reason: 'NotEnforced', message: expect.stringMatching(/^not enforced by this version/) })]);
  });

  it('an empty list asks for nothing and is accepted', () => {
    expect(validatePolicy(doc({ filters: [], budgets: [], credentials: [] })).ok).toBe(true);
  });

  it('a shape error is reported as such, before any NotEnforced finding', () => {
    const r = validatePolicy(doc({ budgets: [{ tokens: -1, per: '1m' }] }));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.issues.map((i) => [i.path, i.reason])).toEqual([['spec.budgets[0].tokens', undefined]]);
  });

  it('in the cluster: Accepted=False with reason NotEnforced, and the namespace keeps no new policy', () => {
    for (const field of FIELDS) {
      const res = { ...doc({ [field]: SAMPLES[field] }), metadata: { name: 'p', namespace: 'team-a', creationTimestamp: '2026-01-01T00:00:00Z' } };
      const { outcome, verdicts } = evaluateNamespace('team-a', true, [res], defaultPolicySpec());
      expect(verdicts.get('p')).toMatchObject({ status: 'False', reason: 'NotEnforced', message: expect.stringContaining(`spec.${field}: not enforced by this version`) });
      expect(outcome.kind).toBe('rejected');
    }
  });

  it('a policy with other errors too stays Invalid', () => {
    const res = { ...doc({ providers: ['openia'], budgets: SAMPLES.budgets }), metadata: { name: 'p', namespace: 'team-a' } };
    expect(evaluateNamespace('team-a', true, [res], defaultPolicySpec()).verdicts.get('p')).toMatchObject({ reason: 'Invalid' });
  });

  it('in this version every schema field is enforced: the real list is empty and a policy using them all is accepted', async () => {
    const real = await vi.importActual<typeof import('../../../shared/policy/enforced.js')>('../../../shared/policy/enforced.js');
    expect(real.NOT_ENFORCED_FIELDS).toEqual([]);
    const spec = defaultPolicySpec();
    spec.filters = [{ type: 'regex' } as never];
    expect(real.notEnforced(spec)).toEqual([]);
  });
});
