// spec.filters: names, defaults, the onError alias and per-type fields, each bad value named by its path.
import { describe, expect, it } from 'vitest';
import { validatePolicy } from '../../../shared/policy/validate.js';

const doc = (filters: unknown[]) => ({ apiVersion: 'aigress.io/v1alpha1', kind: 'EgressPolicy', metadata: { name: 'p', namespace: 'team-a' }, spec: { filters } });
const ok = (filters: unknown[]) => {
  const r = validatePolicy(doc(filters));
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return r.policy.spec.filters;
};
const issues = (filters: unknown[]) => {
  const r = validatePolicy(doc(filters));
  return r.ok ? [] : r.issues.map((i) => `${i.path}: ${i.message}`);
};

describe('spec.filters', () => {
  it('fills defaults: name <type>-<index>, FailClosed, 200ms for external and 2s for built-in, phase request, every PII kind', () => {
    const [pii, ext] = ok([{ type: 'pii' }, { type: 'external', url: 'http://guard:8080/check' }]);
    expect(pii).toEqual({ type: 'pii', name: 'pii-0', failureMode: 'FailClosed', timeout: '2s', phase: 'request', detect: ['email', 'phone', 'credit-card', 'iban', 'us-ssn', 'ip-address', 'secret'], action: 'redact', restore: false, logText: false });
    expect(ext).toEqual({ type: 'external', name: 'external-1', failureMode: 'FailClosed', timeout: '200ms', phase: 'request', url: 'http://guard:8080/check' });
  });

  it('onError is an alias of failureMode (deny = FailClosed, allow = FailOpen); a contradiction is refused', () => {
    expect(ok([{ type: 'external', url: 'http://g/', onError: 'allow' }])[0]).toMatchObject({ failureMode: 'FailOpen' });
    expect(ok([{ type: 'external', url: 'http://g/', onError: 'deny' }])[0]).toMatchObject({ failureMode: 'FailClosed' });
    expect(issues([{ type: 'external', url: 'http://g/', onError: 'allow', failureMode: 'FailClosed' }])).toEqual(['spec.filters[0].onError: contradicts failureMode FailClosed (onError is its older alias; use failureMode)']);
  });

  it('a chosen name must be unique', () => {
    expect(issues([{ type: 'pii', name: 'x' }, { type: 'regex', name: 'x', pattern: 'a' }])).toEqual(['spec.filters[1].name: "x" is already the name of spec.filters[0]']);
  });

  it.each([
    [{ type: 'pii', detect: ['emali'] }, 'spec.filters[0].detect[0]'],
    [{ type: 'pii', action: 'block', restore: true }, 'spec.filters[0].restore'],
    [{ type: 'pii', timeout: '5 seconds' }, 'spec.filters[0].timeout'],
    [{ type: 'pii', failureMode: 'Closed' }, 'spec.filters[0].failureMode'],
    [{ type: 'pii', name: 'Bad Name' }, 'spec.filters[0].name'],
    [{ type: 'regex', pattern: 'x', window: 0 }, 'spec.filters[0].window'],
    [{ type: 'prompt-injection', threshold: 1.5 }, 'spec.filters[0].threshold'],
    [{ type: 'prompt-injection', phase: 'response' }, 'spec.filters[0].phase'],
    [{ type: 'external', url: 'http://user:pw@guard/' }, 'spec.filters[0].url'],
    [{ type: 'transform', setHeaders: [{ name: 'x-a' }] }, 'spec.filters[0].setHeaders[0]'],
    [{ type: 'transform', setBodyFields: [{ path: '$.a', fromIdentity: 'node' }] }, 'spec.filters[0].setBodyFields[0].fromIdentity'],
  ])('%j is refused at %s', (f, path) => {
    const got = issues([f]);
    expect(got.length, JSON.stringify(got)).toBeGreaterThan(0);
    expect(got[0]!.startsWith(`${path}:`), got[0]).toBe(true);
  });
});
