import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { parseDocuments } from '../../../cli/inputs.js';
import { explain } from '../../../cli/policy/explain.js';
import { validateDocuments } from '../../../cli/policy/findings.js';
import { compileNamespacePolicy } from '../../../webhook/policy/compile.js';
import { defaultPolicySpec } from '../../../shared/policy/validate.js';
import { validateAgainst, type Schema } from '../../support/crd-schema.js';

// examples/: each ready policy passes every check `aigress policy validate` makes (the control plane's) and the
// CRD schema with its CEL rules (what `kubectl apply` checks), and does what its comment says.

const DIR = 'examples';
const files = readdirSync(DIR).filter((f) => f.endsWith('.yaml')).sort();
const schemaOf = (file: string): Schema => (parse(readFileSync(`charts/aigress/crds/${file}`, 'utf8')) as { spec: { versions: Array<{ schema: { openAPIV3Schema: Schema } }> } }).spec.versions[0]!.schema.openAPIV3Schema;
const SCHEMAS: Record<string, Schema> = { EgressPolicy: schemaOf('egresspolicies.aigress.io.yaml'), ClusterEgressPolicy: schemaOf('clusteregresspolicies.aigress.io.yaml') };
const docsOf = (f: string): ReturnType<typeof parseDocuments> => parseDocuments({ source: `${DIR}/${f}`, text: readFileSync(`${DIR}/${f}`, 'utf8') });

/** The effective policy of one example for its namespace, merged over the built-in default as in a cluster. */
function effective(f: string): { policy: Parameters<typeof explain>[0]; mode: Parameters<typeof explain>[1] } {
  const report = validateDocuments(docsOf(f));
  const p = report.policies[0]!;
  const ns = p.policy!.metadata.namespace ?? 'default';
  const r = p.kind === 'ClusterEgressPolicy' ? compileNamespacePolicy(p.policy!.spec, ns) : compileNamespacePolicy(defaultPolicySpec(), ns, p.validated);
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return { policy: r.policy, mode: p.mode };
}

describe('examples/', () => {
  it('has the ready policies the docs name', () => {
    expect(files).toEqual(['audit-rollout.yaml', 'cluster-default.yaml', 'deny-by-default-allow-list.yaml', 'eu-data-residency.yaml', 'per-team-budgets.yaml', 'pii-redaction.yaml']);
  });

  it.each(files)('%s: valid for the control plane and for the API server (schema and CEL)', (f) => {
    const docs = docsOf(f);
    const report = validateDocuments(docs);
    expect(report.findings).toEqual([]);
    expect(report.skipped).toEqual([]);
    for (const d of docs) expect(validateAgainst(SCHEMAS[(d.value as { kind: string }).kind]!, d.value), f).toEqual([]);
  });

  it('eu-data-residency: a US region is 451, an EU one passes, an unlisted Azure resource is unknown and denied', () => {
    const { policy, mode } = effective('eu-data-residency.yaml');
    expect(explain(policy, mode, { host: 'bedrock-runtime.us-east-1.amazonaws.com', path: '/model/mistral.mistral-large-2402-v1:0/converse' })).toMatchObject({ decision: 'deny', status: 451 });
    expect(explain(policy, mode, { host: 'bedrock-runtime.eu-west-3.amazonaws.com', path: '/model/mistral.mistral-large-2402-v1:0/converse' }).decision).toBe('allow');
    expect(explain(policy, mode, { host: 'team-a-openai.openai.azure.com', path: '/openai/deployments/gpt4o/chat/completions' }).decision).toBe('allow');
    expect(explain(policy, mode, { host: 'other.openai.azure.com', path: '/openai/deployments/gpt4o/chat/completions' })).toMatchObject({ decision: 'deny', reason: 'region_unknown' });
    expect(explain(policy, mode, { host: 'api.openai.com' })).toMatchObject({ decision: 'deny', reason: 'unmatched_egress' });
  });

  it('deny-by-default-allow-list: listed model families only, every other host refused', () => {
    const { policy, mode } = effective('deny-by-default-allow-list.yaml');
    expect(explain(policy, mode, { provider: 'anthropic', model: 'claude-3-5-haiku-20241022' }).decision).toBe('allow');
    expect(explain(policy, mode, { provider: 'anthropic', model: 'claude-3-opus' })).toMatchObject({ decision: 'deny', status: 403 });
    expect(explain(policy, mode, { host: 'github.com' })).toMatchObject({ decision: 'deny', reason: 'unmatched_egress' });
  });

  it('per-team-budgets: two namespaces, two budgets each', () => {
    const report = validateDocuments(docsOf('per-team-budgets.yaml'));
    expect(report.policies.map((p) => [p.policy!.metadata.namespace, p.policy!.spec.budgets.length])).toEqual([['ml-research', 2], ['chatbots', 2]]);
  });

  it('pii-redaction: one pii filter that redacts the prompt and restores the answer; audit-rollout: the EU rules in audit mode, so a denial passes', () => {
    const pii = effective('pii-redaction.yaml').policy.spec.filters;
    expect(pii).toEqual([expect.objectContaining({ type: 'pii', detect: ['email', 'phone', 'credit-card', 'iban', 'secret'], action: 'redact', restore: true, phase: 'request' })]);
    const { policy, mode } = effective('audit-rollout.yaml');
    expect(mode).toBe('audit');
    expect(explain(policy, mode, { provider: 'bedrock', region: 'us-east-1' })).toMatchObject({ mode: 'audit', decision: 'deny', status: 451 });
  });

  it('cluster-default: a ClusterEgressPolicy named default whose denied models every namespace keeps', () => {
    const report = validateDocuments(docsOf('cluster-default.yaml'));
    expect(report.policies[0]!.kind).toBe('ClusterEgressPolicy');
    const spec = report.policies[0]!.policy!.spec;
    const merged = compileNamespacePolicy(spec, 'team-a', { apiVersion: 'aigress.io/v1alpha1', kind: 'EgressPolicy', metadata: { name: 'mine', namespace: 'team-a' }, spec: { models: { deny: ['gpt-3.5*'] } } });
    expect(merged.ok && merged.policy.spec.models.deny).toEqual(['*-preview', 'gpt-3.5*']);
  });
});
