import { readFileSync, writeFileSync } from 'node:fs';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';

// These tests exercise the schema and merge rules of fields that are not enforced yet (budgets and
// credentials); the refusal of such policies has its own tests (test/unit/shared/enforced.test.ts).
import { UserError } from '../../../shared/errors.js';
import { withPaths } from '../../support/paths.js';
import { CLUSTER_DEFAULT_NAME, compileNamespacePolicy, overlapIssues, parseClusterDefault } from '../../../webhook/policy/compile.js';
import { evaluateNamespace } from '../../../webhook/policy/controller.js';

const fixture = (name: string): string => readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8');
const defaults = parseClusterDefault(fixture('cluster-default.yaml'), 'cluster-default.yaml');
const nsPolicy = parse(fixture('namespace-policy.yaml')) as Record<string, unknown>;

/** Golden files are written only with UPDATE_GOLDEN=1, and then read by a person before committing. */
function golden(name: string, actual: unknown): void {
  const url = new URL(`./golden/${name}`, import.meta.url);
  const text = JSON.stringify(actual, null, 2) + '\n';
  if (process.env.UPDATE_GOLDEN === '1') writeFileSync(url, text);
  expect(text).toBe(readFileSync(url, 'utf8'));
}

describe('compileNamespacePolicy', () => {
  it('gives a namespace without a policy the cluster default as is', () => {
    const r = compileNamespacePolicy(defaults, 'team-z');
    expect(r).toEqual({ ok: true, policy: { apiVersion: 'aigress.io/v1alpha1', kind: 'EgressPolicy', metadata: { name: CLUSTER_DEFAULT_NAME, namespace: 'team-z' }, spec: defaults } });
  });

  it('merges a namespace policy over the default with the documented precedence (golden)', () => {
    const r = compileNamespacePolicy(defaults, 'team-a', nsPolicy);
    if (!r.ok) throw new Error(JSON.stringify(r.issues));
    const s = r.policy.spec;
    expect(s.providers).toEqual(['openai', 'bedrock']); // namespace replaces
    expect(s.regions).toEqual(defaults.regions); // not set: inherited
    expect(s.models).toEqual({ allow: ['gpt-4o*'], deny: ['o1*', 'gpt-4o-mini'] }); // allow inherited, deny unioned
    expect(s.budgets.map((b) => b.per)).toEqual(['1h', '1m']); // both apply
    expect(s.filters.map((f) => f.type)).toEqual(['pii', 'regex']); // default's first
    expect(s.credentials.map((c) => c.secretRef.name)).toEqual(['team-a-openai', 'platform-anthropic']); // per provider
    expect(s.unmatchedEgress).toBe('deny');
    golden('compile-team-a.json', r.policy);
  });

  it('is deterministic (the ETag depends on it) and does not alias its inputs', () => {
    const a = compileNamespacePolicy(defaults, 'team-a', nsPolicy);
    const b = compileNamespacePolicy(defaults, 'team-a', structuredClone(nsPolicy));
    expect(JSON.stringify(a)).toBe(JSON.stringify(b));
    if (!a.ok) throw new Error('unexpected');
    a.policy.spec.filters.push(a.policy.spec.filters[0]!);
    a.policy.spec.models.deny.push('x');
    expect(defaults.filters).toHaveLength(1);
    expect(defaults.models.deny).toEqual(['o1*']);
  });

  it('ignores the resource\'s server-side metadata and status', () => {
    const live = { ...nsPolicy, metadata: { name: 'team-a', namespace: 'team-a', uid: 'u', resourceVersion: '7', managedFields: [{}] }, status: { conditions: [] } };
    const r = compileNamespacePolicy(defaults, 'team-a', live);
    expect(r.ok && r.policy.metadata).toEqual({ name: 'team-a', namespace: 'team-a' });
  });

  it('reports bad regex, unknown provider and overlapping rules with field paths', () => {
    const bad = withPaths(nsPolicy, ['spec.providers', ['openai', 'openia']], ['spec.filters[0].pattern', '(unclosed']);
    const r1 = compileNamespacePolicy(defaults, 'team-a', bad);
    expect(r1.ok).toBe(false);
    if (!r1.ok) expect(r1.issues.map((i) => i.path)).toEqual(['spec.providers[1]', 'spec.filters[0].pattern']);

    const overlapping = withPaths(
      nsPolicy,
      ['spec.providers', ['openai', 'openai']],
      ['spec.models', { allow: ['gpt-4o'], deny: ['gpt-4o'] }],
      ['spec.budgets', [{ tokens: 1, per: '1m' }, { tokens: 2, per: '1m', scope: 'pod' }]],
      ['spec.credentials', [
        { provider: 'openai', secretRef: { name: 'a', key: 'k' } },
        { provider: 'openai', secretRef: { name: 'b', key: 'k' } },
      ]],
    );
    const r2 = compileNamespacePolicy(defaults, 'team-a', overlapping);
    expect(r2.ok).toBe(false);
    if (!r2.ok) {
      expect(r2.issues).toEqual([
        { path: 'spec.providers[1]', message: 'provider "openai" repeats spec.providers[0]' },
        { path: 'spec.models.deny[0]', message: '"gpt-4o" is both allowed (spec.models.allow[0]) and denied' },
        { path: 'spec.budgets[1]', message: 'overlaps spec.budgets[0] (same scope pod and window 1m); keep one' },
        { path: 'spec.credentials[1]', message: 'second credential for provider openai (first: spec.credentials[0])' },
      ]);
    }
  });

  it('refuses a filter name the namespace chose that a cluster default filter already has, naming both fields', () => {
    const platform = parseClusterDefault(
      fixture('cluster-default.yaml').replace('- { type: pii, detect: [credit-card, secret], action: redact, phase: request }', '- { type: pii, detect: [credit-card, secret], action: redact, phase: request }\n    - { type: regex, name: no-jailbreak, pattern: "jailbreak", action: block }'),
      'values.yaml',
    );
    expect(platform.filters.map((f) => f.name)).toEqual(['pii-0', 'no-jailbreak']);
    const clash = withPaths(nsPolicy, ['spec.filters', [{ type: 'regex', pattern: 'x' }, { type: 'pii', name: 'no-jailbreak', action: 'log' }]]);
    const r = compileNamespacePolicy(platform, 'team-a', clash);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.issues).toHaveLength(1);
      expect(r.issues[0]!.path).toBe('spec.filters[1].name');
      expect(r.issues[0]!.message).toMatch(/^"no-jailbreak" is already the name of the cluster default policy's spec.filters\[1\] \(regex\)/);
    }
    // a chosen name that equals a default-named filter of the platform's (pii-0) is the author's choice: refused too
    const r2 = compileNamespacePolicy(platform, 'team-a', withPaths(nsPolicy, ['spec.filters', [{ type: 'pii', name: 'pii-0', action: 'log' }]]));
    expect(!r2.ok && r2.issues.map((i) => i.path)).toEqual(['spec.filters[0].name']);
    // default names on both sides are nobody's choice: accepted (the pipeline numbers them apart)
    const r3 = compileNamespacePolicy(platform, 'team-a', withPaths(nsPolicy, ['spec.filters', [{ type: 'pii', action: 'log' }]]));
    expect(r3.ok && r3.policy.spec.filters.map((f) => f.name)).toEqual(['pii-0', 'no-jailbreak', 'pii-0']);
    // the controller: Accepted=False, Invalid, the message naming both fields
    const res = { apiVersion: 'aigress.io/v1alpha1', kind: 'EgressPolicy', metadata: { name: 'team-a', namespace: 'team-a', creationTimestamp: '2026-01-01T00:00:00Z' }, spec: clash.spec };
    const v = evaluateNamespace('team-a', true, [res], platform);
    expect(v.outcome.kind).toBe('rejected');
    expect(v.verdicts.get('team-a')).toMatchObject({ status: 'False', reason: 'Invalid', message: expect.stringMatching(/^spec.filters\[1\].name: "no-jailbreak" is already the name of the cluster default policy's spec.filters\[1\]/) });
  });

  it('checks the cluster default fully at start, naming the file', () => {
    expect(() => parseClusterDefault('spec: {}', 'values.yaml')).toThrow(UserError);
    expect(() => parseClusterDefault(fixture('cluster-default.yaml').replace('deny: ["o1*"]', 'deny: ["gpt-4o*"]'), 'values.yaml')).toThrow(
      /^values.yaml: invalid cluster default policy: spec.models.deny\[0\]: "gpt-4o\*" is both allowed/,
    );
    expect(overlapIssues(defaults)).toEqual([]);
  });
});
