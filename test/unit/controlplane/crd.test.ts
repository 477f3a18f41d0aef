import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { describe, expect, it, vi } from 'vitest';

// These tests exercise the schema and merge rules of fields that are not enforced yet (budgets and
// credentials); the refusal of such policies has its own tests (test/unit/shared/enforced.test.ts).
vi.mock('../../../shared/policy/enforced.js', async () => (await import('../../support/unenforced.js')).acceptUnenforced());
import { EGRESS_POLICY_API_VERSION, EGRESS_POLICY_KIND } from '../../../shared/constants.js';
import { validatePolicy } from '../../../shared/policy/validate.js';
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
    const declared = schemaPaths(schema.properties!.spec!, 'spec').filter((p) => !p.endsWith('{}'));
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
    // shared/policy/validate.ts does not check secretRef's keys (yet): here the CRD is the only guard
    const typo = withPaths(full, ['spec.credentials[0].secretRef.nmae', 'x']);
    expect(validateAgainst(schema, typo)[0]).toMatch(/^spec\.credentials\[0\]\.secretRef\.nmae: unknown field/);
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
