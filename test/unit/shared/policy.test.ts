import { describe, expect, it } from 'vitest';

// These tests exercise the schema and merge rules of fields that are not enforced yet (budgets and
// credentials); the refusal of such policies has its own tests (test/unit/shared/enforced.test.ts).
import { parsePolicy } from '../../../shared/policy/load.js';
import { parseDuration, validatePolicy } from '../../../shared/policy/validate.js';
import { UserError } from '../../../shared/errors.js';

const base = { apiVersion: 'aigress.io/v1alpha1', kind: 'EgressPolicy', metadata: { name: 'p', namespace: 'team-a' } };

describe('validatePolicy', () => {
  it('accepts the architecture example and keeps every field', () => {
    const text = `
apiVersion: aigress.io/v1alpha1
kind: EgressPolicy
metadata: { name: default, namespace: team-a }
spec:
  providers: [openai, azure-openai, anthropic, gemini, vertex-ai, bedrock, mistral]
  regions:   { allow: [eu], unknown: deny }
  models:    { allow: ["gpt-4o*", "claude-*"], deny: [] }
  budgets:   [{ tokens: 200000, per: 1m, scope: pod }]
  filters:
    - { type: pii, detect: [email, phone, credit-card, iban, secret], action: redact, phase: request }
    - { type: regex, pattern: "(?i)ignore (all )?previous instructions", action: block, phase: request }
    - { type: external, url: "http://guard.security:8080/check", timeout: 200ms, onError: deny }
  credentials: [{ provider: openai, secretRef: { name: openai-key, key: apiKey } }]
  unmatchedEgress: passthrough
`;
    const p = parsePolicy(text, 'example.yaml');
    expect(p.metadata).toEqual({ name: 'default', namespace: 'team-a' });
    expect(p.spec.providers).toHaveLength(7);
    expect(p.spec.regions).toEqual({ allow: ['eu'], unknown: 'deny' });
    expect(p.spec.models.allow).toEqual(['gpt-4o*', 'claude-*']);
    expect(p.spec.budgets).toEqual([{ tokens: 200000, per: '1m', scope: 'pod', onStoreError: 'FailClosed' }]);
    expect(p.spec.filters.map((f) => f.type)).toEqual(['pii', 'regex', 'external']);
    expect(p.spec.filters[2]).toMatchObject({ name: 'external-2', url: 'http://guard.security:8080/check', timeout: '200ms', failureMode: 'FailClosed' });
    expect(p.spec.credentials[0]).toEqual({ provider: 'openai', secretRef: { name: 'openai-key', key: 'apiKey' } });
    expect(p.spec.unmatchedEgress).toBe('passthrough');
  });

  it('fills safe defaults for an empty spec', () => {
    const r = validatePolicy({ ...base });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.policy.spec.unmatchedEgress).toBe('passthrough');
    expect(r.policy.spec.regions.unknown).toBe('allow');
    expect(r.policy.spec.providers).toContain('bedrock');
  });

  it('fails closed on unknown regions once an allow list exists', () => {
    const r = validatePolicy({ ...base, spec: { regions: { allow: ['eu'] } } });
    expect(r.ok && r.policy.spec.regions.unknown).toBe('deny');
  });

  it.each([
    [{ spec: { providers: ['openai', 'opanai'] } }, 'spec.providers[1]', 'unknown provider "opanai"'],
    [{ spec: { unmatchedEgress: 'allow' } }, 'spec.unmatchedEgress', 'must be one of passthrough, deny'],
    [{ spec: { regionz: {} } }, 'spec.regionz', 'unknown field'],
    [{ spec: { regions: { allow: 'eu' } } }, 'spec.regions.allow', 'must be a list'],
    [{ spec: { budgets: [{ tokens: -1, per: '1m' }] } }, 'spec.budgets[0].tokens', 'positive integer'],
    [{ spec: { budgets: [{ tokens: 5, per: 'soon' }] } }, 'spec.budgets[0].per', 'duration'],
    [{ spec: { filters: [{ type: 'regex', pattern: '(' }] } }, 'spec.filters[0].pattern', 'invalid regular expression'],
    [{ spec: { filters: [{ type: 'magic' }] } }, 'spec.filters[0].type', 'must be one of pii, regex, prompt-injection, external, transform'],
    [{ spec: { filters: [{ type: 'external', url: 'ftp://x' }] } }, 'spec.filters[0].url', 'http or https'],
    [{ spec: { credentials: [{ provider: 'openai' }] } }, 'spec.credentials[0].secretRef', '{ name, key }'],
    [{ kind: 'Policy' }, 'kind', 'must be EgressPolicy'],
  ])('reports %j at its field path', (patch, path, message) => {
    const r = validatePolicy({ ...base, ...patch });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    const issue = r.issues.find((i) => i.path === path);
    expect(issue, JSON.stringify(r.issues)).toBeDefined();
    expect(issue!.message).toContain(message);
  });

  it('parsePolicy names the file and the field in one line', () => {
    const err = (() => {
      try {
        parsePolicy('apiVersion: aigress.io/v1alpha1\nkind: EgressPolicy\nspec: { unmatchedEgress: maybe }\n', 'p.yaml');
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toMatch(/^p\.yaml: invalid EgressPolicy: spec\.unmatchedEgress: /);
    expect((err as Error).message).not.toContain('\n');
    expect(() => parsePolicy('a: [', 'bad.yaml')).toThrow(/^bad\.yaml: invalid YAML/);
    expect(() => parsePolicy('a: 1\n---\nb: 2\n', 'two.yaml')).toThrow(/exactly one EgressPolicy document, found 2/);
  });
});

describe('parseDuration', () => {
  it.each([
    ['200ms', 200],
    ['2s', 2000],
    ['1m', 60_000],
    ['24h', 86_400_000],
    ['1d', 86_400_000],
  ])('%s = %d ms', (s, ms) => expect(parseDuration(s)).toBe(ms));
  it.each(['', '1', '1.5s', '-1s', 's', '1 m'])('rejects %j', (s) => expect(parseDuration(s)).toBeUndefined());
});
