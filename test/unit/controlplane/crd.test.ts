import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';

// These tests exercise the schema and merge rules of fields that are not enforced yet (budgets and
// credentials); the refusal of such policies has its own tests (test/unit/shared/enforced.test.ts).
import { EGRESS_POLICY_API_VERSION, EGRESS_POLICY_KIND } from '../../../shared/constants.js';
import { validatePolicy } from '../../../shared/policy/validate.js';
import { overlapIssues } from '../../../webhook/policy/compile.js';
import { structuralProblems, validateAgainst, type Schema } from '../../support/crd-schema.js';
import { withPaths } from '../../support/paths.js';

const crd = parse(readFileSync(new URL('../../../charts/aigress/crds/egresspolicies.aigress.io.yaml', import.meta.url), 'utf8')) as {
  apiVersion: string;
  spec: { group: string; scope: string; names: { kind: string; plural: string }; versions: Array<{ name: string; served: boolean; storage: boolean; subresources?: { status?: object }; schema: { openAPIV3Schema: Schema } }> };
  metadata: { name: string };
};
const version = crd.spec.versions[0]!;
const schema = version.schema.openAPIV3Schema;
const full = parse(readFileSync(new URL('./fixtures/policy-full.yaml', import.meta.url), 'utf8')) as Record<string, unknown>;

/** Every property path the schema declares under `spec` (arrays as `[]`, maps as `{}`). */
function schemaPaths(s: Schema, path: string): string[] {
  const out = [path];
  for (const [k, v] of Object.entries(s.properties ?? {})) out.push(...schemaPaths(v, `${path}.${k}`));
  if (s.items) out.push(...schemaPaths(s.items, `${path}[]`).slice(1));
  if (typeof s.additionalProperties === 'object') out.push(`${path}{}`);
  return out;
}
function valuePaths(v: unknown, path: string): string[] {
  const out = [path];
  if (Array.isArray(v)) for (const x of v) out.push(...valuePaths(x, `${path}[]`).slice(1));
  else if (typeof v === 'object' && v !== null) {
    for (const [k, x] of Object.entries(v)) out.push(...valuePaths(x, `${path}.${k}`));
  }
  return out;
}

describe('EgressPolicy CRD', () => {
  it('is a v1 CRD for the contract group/kind, with a status subresource and a structural schema', () => {
    expect(crd.apiVersion).toBe('apiextensions.k8s.io/v1');
    expect(`${crd.spec.group}/${version.name}`).toBe(EGRESS_POLICY_API_VERSION);
    expect(crd.spec.names.kind).toBe(EGRESS_POLICY_KIND);
    expect(crd.metadata.name).toBe(`${crd.spec.names.plural}.${crd.spec.group}`);
    expect(crd.spec.scope).toBe('Namespaced');
    expect(version.subresources?.status).toEqual({});
    expect(structuralProblems(schema)).toEqual([]);
  });

  it('accepts a policy using every field, and that policy uses every field the schema declares', () => {
    expect(validateAgainst(schema, full)).toEqual([]);
    expect(validatePolicy(full)).toMatchObject({ ok: true });
    // spec.mode (audit mode) is in the CRD ahead of the data plane's validator; it is exercised below.
    const declared = schemaPaths(schema.properties!.spec!, 'spec').filter((p) => !p.endsWith('{}') && p !== 'spec.mode');
    const used = new Set(valuePaths(full.spec, 'spec'));
    // azureResources is a map: its keys are names, not fields
    expect(declared.filter((p) => !used.has(p))).toEqual([]);
  });

  it('rejects misspelt fields and values out of closed vocabularies, naming the path', () => {
    const cases: Array<[string, unknown, RegExp]> = [
      ['spec.provider', ['openai'], /^spec\.provider: unknown field/],
      ['spec.regions.alow', ['eu'], /^spec\.regions\.alow: unknown field/],
      ['spec.filters[0].acton', 'block', /^spec\.filters\[0\]\.acton: unknown field/],
      ['spec.unmatchedEgress', 'passthru', /^spec\.unmatchedEgress: Unsupported value: "passthru"/],
      ['spec.regions.unknown', 'maybe', /^spec\.regions\.unknown: Unsupported value/],
      ['spec.filters[1].type', 'regexp', /^spec\.filters\[1\]\.type: Unsupported value/],
      ['spec.budgets[0].per', '1 minute', /^spec\.budgets\[0\]\.per: Invalid value/],
      ['spec.budgets[0].tokens', 0, /^spec\.budgets\[0\]\.tokens: Invalid value: 0/],
      ['spec.budgets[0].tokens', '100', /^spec\.budgets\[0\]\.tokens: Invalid value: "100": must be of type integer/],
      ['spec.budgets[0].per', undefined, /^spec\.budgets\[0\]\.per: Required value/],
      ['spec.metering.identityLabels', ['node'], /^spec\.metering\.identityLabels\[0\]: Unsupported value/],
      ['spec.providers', 'openai', /^spec\.providers: Invalid value: "openai": must be of type array/],
    ];
    for (const [path, value, re] of cases) {
      const doc = withPaths(full, [path, value]);
      const errors = validateAgainst(schema, doc);
      expect(errors.length, path).toBeGreaterThan(0);
      expect(errors[0], path).toMatch(re);
      // and the control plane's own validator refuses the same document (a second line of defence)
      expect(validatePolicy(doc).ok, path).toBe(false);
    }
    const typo = withPaths(full, ['spec.credentials[0].secretRef.nmae', 'x']);
    expect(validateAgainst(schema, typo)[0]).toMatch(/^spec\.credentials\[0\]\.secretRef\.nmae: unknown field/);
    expect(validatePolicy(typo).ok).toBe(false);
  });

  it('leaves semantic checks (unknown provider, bad regex) to the control plane, which reports them', () => {
    const doc = withPaths(full, ['spec.providers', ['openia']], ['spec.filters[1].pattern', '(unclosed']);
    expect(validateAgainst(schema, doc)).toEqual([]);
    const v = validatePolicy(doc);
    expect(v.ok).toBe(false);
    if (!v.ok) expect(v.issues.map((i) => i.path)).toEqual(['spec.providers[0]', 'spec.filters[1].pattern']);
  });

  it('enumerates exactly the values the validator accepts', () => {
    // schema path → where to put a value in the full policy
    const enums: Array<[string, string]> = [
      ['spec.regions.unknown', 'spec.regions.unknown'],
      ['spec.unmatchedEgress', 'spec.unmatchedEgress'],
      ['spec.budgets[].scope', 'spec.budgets[0].scope'],
      ['spec.filters[].action', 'spec.filters[0].action'],
      ['spec.filters[].phase', 'spec.filters[0].phase'],
      ['spec.filters[].onError', 'spec.filters[2].onError'],
      ['spec.metering.identityLabels[]', 'spec.metering.identityLabels[0]'],
    ];
    const at = (path: string): Schema => {
      let s: Schema = schema;
      for (const part of path.split('.')) {
        const [name, arr] = [part.replace('[]', ''), part.endsWith('[]')];
        s = s.properties![name]!;
        if (arr) s = s.items!;
      }
      return s;
    };
    for (const [path, target] of enums) {
      const values = at(path).enum!;
      expect(values.length, path).toBeGreaterThan(1);
      for (const v of values) expect(validatePolicy(withPaths(full, [target, v])).ok, `${path}=${String(v)}`).toBe(true);
      expect(validatePolicy(withPaths(full, [target, 'not-a-value'])).ok, `${path}=not-a-value`).toBe(false);
    }
    // filter types: each accepted with its own fields
    expect(at('spec.filters[].type').enum).toEqual([...new Set((full.spec as { filters: Array<{ type: string }> }).filters.map((f) => f.type))]);
  });
});

const cluster = parse(readFileSync(new URL('../../../charts/aigress/crds/clusteregresspolicies.aigress.io.yaml', import.meta.url), 'utf8')) as typeof crd & {
  spec: { versions: Array<{ additionalPrinterColumns: Array<{ name: string; jsonPath: string }> }> };
};
const clusterSchema = cluster.spec.versions[0]!.schema.openAPIV3Schema;

/** Paths of schema nodes without a description (what `kubectl explain` would print blank). */
function undescribed(s: Schema, path: string): string[] {
  const out = s.description && s.description.trim().length > 3 ? [] : [path];
  for (const [k, v] of Object.entries(s.properties ?? {})) out.push(...undescribed(v, `${path}.${k}`));
  if (s.items) out.push(...undescribed(s.items, `${path}[]`));
  if (typeof s.additionalProperties === 'object') out.push(...undescribed(s.additionalProperties, `${path}{}`));
  return out;
}

describe('the policy API explains itself', () => {
  it('describes every field of both CRDs (kubectl explain)', () => {
    expect(undescribed(schema, 'egresspolicy')).toEqual([]);
    expect(undescribed(clusterSchema, 'clusteregresspolicy')).toEqual([]);
  });

  it('prints mode, providers, regions, unmatched egress and accepted as columns', () => {
    const cols = (crd as unknown as typeof cluster).spec.versions[0]!.additionalPrinterColumns;
    expect(cols.map((c) => [c.name, c.jsonPath])).toEqual(expect.arrayContaining([
      ['Mode', '.spec.mode'], ['Providers', '.spec.providers'], ['Regions', '.spec.regions.allow'],
      ['Unmatched', '.spec.unmatchedEgress'], ['Accepted', '.status.conditions[?(@.type=="Accepted")].status'],
    ]));
  });

  it('has spec.mode: enforce | audit, default enforce', () => {
    const mode = schema.properties!.spec!.properties!.mode!;
    expect(mode).toMatchObject({ type: 'string', enum: ['enforce', 'audit'], default: 'enforce' });
    expect(validateAgainst(schema, withPaths(full, ['spec.mode', 'audit']))).toEqual([]);
    expect(validateAgainst(schema, withPaths(full, ['spec.mode', 'shadow']))[0]).toMatch(/^spec\.mode: Unsupported value: "shadow"/);
  });

  it.each([
    ['a model both allowed and denied', [['spec.models', { allow: ['gpt-4o', 'claude-*'], deny: ['claude-*'] }]], /^spec: Invalid value: a model pattern is both in models.allow and in models.deny/],
    ['two budgets counting the same thing', [['spec.budgets', [{ tokens: 10, per: '1m', scope: 'pod' }, { tokens: 20, per: '1m' }]]], /^spec\.budgets: Invalid value: two budgets count the same thing/],
    ['two credentials for one provider', [['spec.credentials', [{ provider: 'openai', secretRef: { name: 'a', key: 'k' } }, { provider: 'openai', secretRef: { name: 'b', key: 'k' } }]]], /^spec\.credentials: Invalid value: two credentials for the same provider/],
    ['a regex filter without a pattern', [['spec.filters', [{ type: 'regex', action: 'block' }]]], /^spec\.filters\[0\]: Invalid value: pattern is required by regex filters/],
    ['a pii filter with a url', [['spec.filters', [{ type: 'pii', url: 'http://x' }]]], /^spec\.filters\[0\]: Invalid value: url is required by external filters and taken by no other type/],
    ['a repeated provider', [['spec.providers', ['openai', 'openai']]], /^spec\.providers\[1\]: Duplicate value/],
  ])('refuses at kubectl apply (CEL / list-type): %s, and the controller refuses it too', (_what, edits, re) => {
    const doc = withPaths(full, ...(edits as Array<[string, unknown]>));
    const errors = validateAgainst(schema, doc);
    expect(errors[0]).toMatch(re);
    expect(validateAgainst(clusterSchema, { ...doc, kind: 'ClusterEgressPolicy', metadata: { name: 'default' } })[0]).toMatch(re);
  });

  // The CEL rule and the controller (overlapIssues) must draw the same line: a pair the CRD refuses at
  // kubectl apply is one the controller would refuse, and stacked budgets the issue asks for pass both.
  const a = { tokens: 1000, per: '1h', scope: 'namespace' };
  it.each([
    ['differ by models (a gpt-4o* budget beside an all-models one)', a, { ...a, tokens: 100, models: ['gpt-4o*'] }, true],
    ['differ by model list', { ...a, models: ['gpt-4o*'] }, { ...a, models: ['claude-*'] }, true],
    ['differ by providers', a, { ...a, providers: ['openai'] }, true],
    ['differ by type', a, { ...a, type: 'input' }, true],
    ['tokens beside usd', a, { usd: 5, per: '1h', scope: 'namespace' }, true],
    ['differ by window', a, { ...a, per: '1m' }, true],
    ['differ by scope', a, { ...a, scope: 'pod' }, true],
    ['identical', a, { ...a }, false],
    ['same but for the limit', a, { ...a, tokens: 5 }, false],
    ['same models', { ...a, models: ['gpt-4o*'] }, { ...a, tokens: 5, models: ['gpt-4o*'] }, false],
    ['same providers and type', { ...a, type: 'output', providers: ['anthropic'] }, { ...a, type: 'output', providers: ['anthropic'], tokens: 7 }, false],
    ['scope absent and pod', { tokens: 1, per: '1m' }, { tokens: 2, per: '1m', scope: 'pod' }, false],
  ])('budgets that %s: CRD and controller agree (accepted: %s)', (_what, b1, b2, accepted) => {
    const doc = withPaths(full, ['spec.budgets', [b1, b2]]);
    const errors = validateAgainst(schema, doc);
    expect(errors.length === 0, errors.join('; ')).toBe(accepted);
    if (!accepted) expect(errors[0]).toMatch(/^spec\.budgets: Invalid value: two budgets count the same thing/);
    const v = validatePolicy(doc);
    expect(v.ok).toBe(true);
    if (v.ok) expect(overlapIssues(v.policy.spec).length === 0).toBe(accepted);
  });

  it('takes the windows the validator takes (1s and up; not 500ms)', () => {
    for (const [per, ok] of [['500ms', false], ['999ms', false], ['0s', false], ['1000ms', true], ['1500ms', true], ['1s', true], ['24h', true], ['1d', true]] as const) {
      const doc = withPaths(full, ['spec.budgets', [{ tokens: 10, per }]]);
      expect(validateAgainst(schema, doc).length === 0, per).toBe(ok);
      expect(validatePolicy(doc).ok, per).toBe(ok);
    }
  });

  it('accepts budgets that differ in scope or window and filters with only their own fields', () => {
    const doc = withPaths(full, ['spec.budgets', [{ tokens: 10, per: '1m', scope: 'pod' }, { tokens: 20, per: '1h' }, { tokens: 30, per: '1m', scope: 'namespace' }]]);
    expect(validateAgainst(schema, doc)).toEqual([]);
  });

  it('ClusterEgressPolicy: cluster-scoped, the same spec schema, one named default', () => {
    expect(cluster.spec.scope).toBe('Cluster');
    expect(cluster.spec.names.kind).toBe('ClusterEgressPolicy');
    expect(cluster.metadata.name).toBe('clusteregresspolicies.aigress.io');
    // Fields added to the EgressPolicy spec must be added to the ClusterEgressPolicy's too: one schema.
    expect(clusterSchema.properties!.spec).toEqual(schema.properties!.spec);
    const doc = { apiVersion: 'aigress.io/v1alpha1', kind: 'ClusterEgressPolicy', metadata: { name: 'default' }, spec: { providers: ['openai'] } };
    expect(validateAgainst(clusterSchema, doc)).toEqual([]);
    expect(validateAgainst(clusterSchema, { ...doc, metadata: { name: 'prod' } })).toEqual(['<root>: Invalid value: the one ClusterEgressPolicy must be named default']);
  });
});
