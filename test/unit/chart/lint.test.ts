import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { lint, template } from './render.js';

// `helm lint --strict` with the real helm binary; values.schema.json turns a typo or a wrong type into a failure
// that names the value, in lint and in template (so in install and upgrade too).

describe('helm lint', () => {
  it('passes with the default values', () => {
    const r = lint();
    expect(r.stdout + r.stderr).toContain('1 chart(s) linted, 0 chart(s) failed');
    expect(r.code).toBe(0);
  });

  it('passes with cert-manager, one replica and a restrictive default policy', () => {
    const r = lint({
      replicas: 1,
      certManager: { enabled: true, issuerRef: { name: 'corp-ca', kind: 'ClusterIssuer', group: 'cert-manager.io' } },
      defaultPolicy: { providers: ['openai'], regions: { allow: ['eu'], unknown: 'deny' }, unmatchedEgress: 'deny' },
    });
    expect(r.code, r.stdout + r.stderr).toBe(0);
  });

  it.each([
    ['a misspelt top-level key', { replica: 3 }, /replica/],
    ['a misspelt nested key', { webhook: { failurePolicy: 'Fail', timeoutSeconds: 10, failurePolcy: 'Ignore' } }, /failurePolcy/],
    ['a misspelt key in the default policy', { defaultPolicy: { provider: ['openai'] } }, /provider/],
    ['a wrong type', { replicas: 'two' }, /replicas/],
    ['an out-of-range number', { webhook: { failurePolicy: 'Fail', timeoutSeconds: 31 } }, /timeoutSeconds/],
    ['a value outside an enum', { webhook: { failurePolicy: 'Sometimes', timeoutSeconds: 10 } }, /failurePolicy/],
    ['root as the control plane UID', { runAsUser: 0 }, /runAsUser/],
    ['a bad enum in the default policy', { defaultPolicy: { unmatchedEgress: 'block' } }, /unmatchedEgress/],
    ['a bad budget window', { defaultPolicy: { budgets: [{ tokens: 100, per: 'hourly' }] } }, /per/],
  ])('fails on %s, naming it', (_what, values, name) => {
    const l = lint(values);
    expect(l.code).not.toBe(0);
    expect(l.stdout + l.stderr).toMatch(name);
    const t = template(values);
    expect(t.code).not.toBe(0);
    expect(t.stderr).toMatch(name);
    expect(t.stderr).toMatch(/values don't meet the specifications of the schema|schema/);
  });

  it('values.schema.json: the default policy is the CRD spec schema, closed against typos', () => {
    // Kept in step by hand; this catches drift. Every object that lists properties gets
    // additionalProperties: false (the CRD relies on the API server's strict field validation instead).
    const crd = parse(readFileSync('charts/aigress/crds/egresspolicies.aigress.io.yaml', 'utf8')) as {
      spec: { versions: Array<{ schema: { openAPIV3Schema: { properties: { spec: unknown } } } }> };
    };
    const close = (s: unknown): unknown => {
      if (Array.isArray(s)) return s.map(close);
      if (typeof s !== 'object' || s === null) return s;
      const o = Object.fromEntries(Object.entries(s).map(([k, v]) => [k, close(v)])) as Record<string, unknown>;
      if (o.type === 'object' && o.properties && o.additionalProperties === undefined) o.additionalProperties = false;
      return o;
    };
    const schema = JSON.parse(readFileSync('charts/aigress/values.schema.json', 'utf8')) as { properties: { defaultPolicy: unknown } };
    expect(schema.properties.defaultPolicy).toEqual(close(crd.spec.versions[0]!.schema.openAPIV3Schema.properties.spec));
  });

  it('every value in values.yaml has a comment', () => {
    // a key line with no comment line right above it (or trailing) is undocumented
    const lines = readFileSync('charts/aigress/values.yaml', 'utf8').split('\n');
    const undocumented = lines.flatMap((line, i) => {
      if (!/^\s*[A-Za-z][\w-]*:/.test(line) || line.includes('#')) return [];
      const indent = line.search(/\S/);
      // a key nested in a documented parent whose value is a plain map of requests/limits needs no own comment
      for (let j = i - 1; j >= 0; j--) {
        const prev = lines[j]!;
        if (prev.trim() === '') return [line.trim()];
        if (prev.trim().startsWith('#')) return prev.search(/\S/) === indent ? [] : [line.trim()];
        if (prev.search(/\S/) < indent) return []; // first child of a key: covered by its parent's comment
        if (prev.search(/\S/) === indent) return /^\s*(cpu|memory|requests|limits|allow|deny|unknown)\b/.test(line) ? [] : [line.trim()];
      }
      return [line.trim()];
    });
    expect(undocumented).toEqual([]);
  });
});
