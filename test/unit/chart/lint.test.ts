import { readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { defaultPolicyValuesSchema } from '../../support/values-schema.js';
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
    ['a misspelt provider in the default policy', { defaultPolicy: { providers: ['openaii'] } }, /defaultPolicy.*providers|providers.*openaii|openaii/],
    ['an unknown region in the default policy', { defaultPolicy: { regions: { allow: ['mars'] } } }, /regions/],
    ['a misspelt credential provider', { defaultPolicy: { credentials: [{ provider: 'open-ai', secretRef: { name: 'k', key: 'k' } }] } }, /provider/],
    ['a repeated provider', { defaultPolicy: { providers: ['openai', 'openai'] } }, /providers/],
    ['a bad mode', { defaultPolicy: { mode: 'shadow' } }, /mode/],
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
    // Built from the CRD (test/support/values-schema.ts); this catches drift. UPDATE_GOLDEN=1 rewrites it.
    const crd = parse(readFileSync('charts/aigress/crds/egresspolicies.aigress.io.yaml', 'utf8')) as {
      spec: { versions: Array<{ schema: { openAPIV3Schema: { properties: { spec: unknown } } } }> };
    };
    const want = defaultPolicyValuesSchema(crd.spec.versions[0]!.schema.openAPIV3Schema.properties.spec);
    const file = 'charts/aigress/values.schema.json';
    const schema = JSON.parse(readFileSync(file, 'utf8')) as { properties: { defaultPolicy: unknown } };
    if (process.env.UPDATE_GOLDEN === '1') {
      schema.properties.defaultPolicy = want;
      writeFileSync(file, `${JSON.stringify(schema, null, 2)}\n`);
    }
    expect(schema.properties.defaultPolicy).toEqual(want);
  });

  it('accepts every kind of region name and every provider in the default policy', () => {
    const r = template({ defaultPolicy: { providers: ['openai', 'bedrock', 'vertex-ai'], regions: { allow: ['eu', 'global', 'eu-central-1', 'us-gov-west-1', 'europe-west4', 'swedencentral'] } } });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
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
