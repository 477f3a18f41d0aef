import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { LineCounter, parseDocument } from 'yaml';
import { locate } from '../../../shared/yaml-locate.js';
import { ensureBuilt, runCli } from '../inject/built-cli.js';

// `aigress policy validate` and `aigress policy explain`, the built binary: findings with file, line, column,
// document and field; exit codes 0 / 1 / 2; explain's rule-by-rule answer for calls of each kind.

beforeAll(() => ensureBuilt(['dist/cli/policy.js']), 180_000);

const dir = mkdtempSync(join(tmpdir(), 'aigress-policy-cli-'));
const file = (name: string, text: string): string => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};

const BAD = `apiVersion: aigress.io/v1alpha1
kind: EgressPolicy
metadata:
  name: bad
  namespace: team-x
spec:
  providers: [openai, openaii]
  regions:
    allow: [eu, mars]
  filters:
    - type: regex
      pattern: "(unclosed"
  unmatchedEgres: deny
`;

describe('field path → YAML position', () => {
  it('points at the key of a map entry, the item of a list, or the deepest part that exists', () => {
    const counter = new LineCounter();
    const doc = parseDocument(BAD, { lineCounter: counter });
    expect(locate(doc, counter, 'spec.providers[1]')).toEqual({ line: 7, col: 23 });
    expect(locate(doc, counter, 'spec.regions.allow[1]')).toEqual({ line: 9, col: 17 });
    expect(locate(doc, counter, 'spec.filters[0].pattern')).toEqual({ line: 12, col: 7 });
    expect(locate(doc, counter, 'spec.unmatchedEgres')).toEqual({ line: 13, col: 3 });
    expect(locate(doc, counter, 'spec.budgets[0].tokens')).toEqual({ line: 6, col: 1 }); // absent: its parent, spec
  });
});

describe('aigress policy validate', () => {
  it('reports every finding as FILE:LINE:COL: document (kind ns/name): field: message, exit 1', async () => {
    const p = file('bad.yaml', BAD);
    const r = await runCli(['policy', 'validate', '-f', p]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe([
      `${p}:13:3: document 1 (EgressPolicy team-x/bad): spec.unmatchedEgres: unknown field (allowed: providers, regions, models, budgets, filters, credentials, unmatchedEgress, metering, mode)`,
      `${p}:7:23: document 1 (EgressPolicy team-x/bad): spec.providers[1]: unknown provider "openaii" (known: openai, azure-openai, anthropic, gemini, vertex-ai, bedrock, mistral)`,
      `${p}:9:17: document 1 (EgressPolicy team-x/bad): spec.regions.allow[1]: unknown region or region group "mars" (groups: eu, us, ca, latam, apac, me, af, cn, global; or an AWS, Google Cloud or Azure region name)`,
      `${p}:12:7: document 1 (EgressPolicy team-x/bad): spec.filters[0].pattern: invalid regular expression (RE2 syntax: no backreferences or lookaround): error parsing regexp: missing closing ): \`(unclosed\``,
      '',
    ].join('\n'));
    expect(r.stderr).toBe('aigress: 4 problems in 1 of 1 policy\n');
  });

  it('runs the overlap checks the controller runs once a policy parses', async () => {
    const p = file('overlap.yaml', `apiVersion: aigress.io/v1alpha1
kind: EgressPolicy
metadata: { name: o, namespace: a }
spec:
  models: { allow: ["gpt-4o"], deny: ["gpt-4o"] }
  budgets:
    - { tokens: 1, per: 1m }
    - { tokens: 2, per: 1m, scope: pod }
`);
    const r = await runCli(['policy', 'validate', '-f', p]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe([
      `${p}:5:39: document 1 (EgressPolicy a/o): spec.models.deny[0]: "gpt-4o" is both allowed (spec.models.allow[0]) and denied`,
      `${p}:8:7: document 1 (EgressPolicy a/o): spec.budgets[1]: overlaps spec.budgets[0] (same scope pod and window 1m); keep one`,
      '',
    ].join('\n'));
  });

  it('checks across documents: one EgressPolicy per namespace, one ClusterEgressPolicy named default', async () => {
    const text = `apiVersion: aigress.io/v1alpha1
kind: EgressPolicy
metadata: { name: first, namespace: a }
spec: {}
---
apiVersion: aigress.io/v1alpha1
kind: EgressPolicy
metadata: { name: second, namespace: a }
spec: {}
---
apiVersion: v1
kind: ConfigMap
metadata: { name: not-a-policy }
---
apiVersion: aigress.io/v1alpha1
kind: ClusterEgressPolicy
metadata: { name: prod }
spec: { mode: audit }
`;
    const r = await runCli(['policy', 'validate', '-f', '-'], text);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe([
      '<stdin>: document 1 (EgressPolicy a/first): valid (mode enforce)',
      '<stdin>:8:13: document 2 (EgressPolicy a/second): metadata.name: namespace a already has EgressPolicy a/first (<stdin> document 1); only one EgressPolicy per namespace takes effect, the others are refused (Conflict)',
      '<stdin>:17:13: document 4 (ClusterEgressPolicy prod): metadata.name: a ClusterEgressPolicy must be named default (there is one, the cluster default)',
      '',
    ].join('\n'));
    expect(r.stderr).toBe('aigress: <stdin>: document 3 (ConfigMap not-a-policy): not an EgressPolicy or ClusterEgressPolicy, skipped\naigress: 2 problems in 2 of 3 policies\n');
  });

  it('reads directories and several -f; prints JSON with -o json; exit 0 when all are valid', async () => {
    const r = await runCli(['policy', 'validate', '-f', 'examples/', '-o', 'json']);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { policies: Array<{ valid: boolean; mode: string }>; findings: unknown[] };
    expect(out.findings).toEqual([]);
    expect(out.policies.length).toBeGreaterThanOrEqual(6);
    expect(out.policies.some((p) => p.mode === 'audit')).toBe(true);
  });

  it.each([
    ['invalid YAML, with line and column', ['-f', '-'], 'apiVersion: aigress.io/v1alpha1\nkind: [\n', 1, /^aigress: <stdin>: document 1: invalid YAML at line 3, column 1: .+\n$/],
    ['a missing file', ['-f', '/nonexistent.yaml'], '', 1, /^aigress: cannot read \/nonexistent.yaml: ENOENT\n$/],
    ['no policy at all', ['-f', '-'], 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n', 1, /aigress: no EgressPolicy or ClusterEgressPolicy in -\n$/],
    ['a bad -o', ['-f', '-', '-o', 'xml'], '', 2, /^aigress: -o "xml": must be one of text, json\n$/],
    ['no -f', [], '', 2, /required option '-f, --filename <file>' not specified/],
  ])('exits non-zero for %s', async (_what, args, stdin, code, stderr) => {
    const r = await runCli(['policy', 'validate', ...args], stdin);
    expect(r.code).toBe(code);
    expect(r.stderr).toMatch(stderr);
  });

  it('has examples in --help', async () => {
    for (const sub of ['validate', 'explain']) {
      const r = await runCli(['policy', sub, '--help']);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/\nExamples:\n {2}aigress policy /);
    }
  });
});

describe('aigress policy explain', () => {
  const run = async (args: string[]): Promise<{ code: number | null; out: { decision: string; status?: number; reason?: string; steps: Array<{ rule: string; outcome: string; detail: string }> } | undefined; stderr: string }> => {
    const r = await runCli(['policy', 'explain', ...args, '-o', 'json']);
    return { code: r.code, out: r.stdout ? JSON.parse(r.stdout) : undefined, stderr: r.stderr };
  };

  it('denies a US Bedrock endpoint under the EU-only policy, naming the rule (451)', async () => {
    const r = await run(['-f', 'examples/eu-data-residency.yaml', '--host', 'bedrock-runtime.us-east-1.amazonaws.com', '--path', '/model/anthropic.claude-3-5-sonnet-20240620-v1:0/converse']);
    expect(r.code).toBe(0);
    expect(r.out).toMatchObject({ decision: 'deny', status: 451, reason: 'region_not_allowed' });
    expect(r.out!.steps.find((s) => s.rule === 'regions')!.detail).toMatch(/region "us-east-1" .* is not in spec.regions.allow \[eu\]/);
  });

  it('allows the EU endpoint of the same provider, naming the allow entry', async () => {
    const r = await run(['-f', 'examples/eu-data-residency.yaml', '--host', 'bedrock-runtime.eu-central-1.amazonaws.com', '--path', '/model/anthropic.claude-3-5-sonnet-20240620-v1:0/converse']);
    expect(r.out).toMatchObject({ decision: 'allow' });
    expect(r.out!.steps.find((s) => s.rule === 'regions')!.detail).toMatch(/eu-central-1 by spec.regions.allow\[0\] "eu"/);
  });

  it('explains model rules, unmatched hosts, and audit mode in text', async () => {
    const denied = await run(['-f', 'examples/deny-by-default-allow-list.yaml', '--provider', 'openai', '--model', 'gpt-4o']);
    expect(denied.out).toMatchObject({ decision: 'deny', status: 403, reason: 'model_not_allowed' });
    const allowed = await run(['-f', 'examples/deny-by-default-allow-list.yaml', '--provider', 'openai', '--model', 'gpt-4o-mini-2024-07-18']);
    expect(allowed.out!.steps.find((s) => s.rule === 'models')!.detail).toBe('model "gpt-4o-mini-2024-07-18" matches spec.models.allow[0] "gpt-4o-mini*"');
    const other = await run(['-f', 'examples/deny-by-default-allow-list.yaml', '--host', 'api.mistral.ai']);
    expect(other.out).toMatchObject({ decision: 'deny', reason: 'unmatched_egress' });
    expect(other.out!.steps[0]!.detail).toMatch(/api.mistral.ai is a mistral host, but mistral is not in spec.providers/);
    const audit = await runCli(['policy', 'explain', '-f', 'examples/audit-rollout.yaml', '--provider', 'bedrock', '--region', 'us-east-1']);
    expect(audit.stdout).toMatch(/\nverdict: would deny \(451 region_not_allowed\), but mode is audit: counted as decision="would-deny" and forwarded\n$/);
  });

  it('merges a namespace policy over --default, as the control plane does (the default\'s denied models stay)', async () => {
    const r = await run(['-f', 'examples/deny-by-default-allow-list.yaml', '--default', 'examples/cluster-default.yaml', '--provider', 'openai', '--model', 'gpt-4o-mini-preview']);
    expect(r.out).toMatchObject({ decision: 'deny', reason: 'model_denied' });
    expect(r.out!.steps.find((s) => s.rule === 'budgets')!.detail).toMatch(/^spec.budgets\[0\]: 1000000 tokens per 1h per namespace/);
  });

  it('with --pod: says whether the pod gets the proxy, and warns when the policy is for another namespace', async () => {
    const pod = file('pod.yaml', 'apiVersion: apps/v1\nkind: Deployment\nmetadata: { name: chat, namespace: team-b }\nspec:\n  selector: { matchLabels: { app: chat } }\n  template:\n    metadata: { labels: { app: chat } }\n    spec: { containers: [{ name: app, image: chat }] }\n');
    const r = await runCli(['policy', 'explain', '-f', 'examples/eu-data-residency.yaml', '--pod', pod, '--provider', 'mistral']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^pod Deployment team-b\/chat in namespace team-b: gets the proxy at admission/);
    expect(r.stdout).toMatch(/\nnote: warning: this policy is in namespace team-a, the call is from team-b: in a cluster it would not apply\n/);
    const optOut = file('optout.yaml', 'apiVersion: v1\nkind: Pod\nmetadata: { name: p, namespace: team-a, labels: { aigress.io/inject: disabled } }\nspec: { containers: [{ name: app, image: x }] }\n');
    const o = await runCli(['policy', 'explain', '-f', 'examples/eu-data-residency.yaml', '--pod', optOut, '--provider', 'mistral']);
    expect(o.stdout).toMatch(/^pod Pod team-a\/p in namespace team-a: gets no proxy: .*label aigress.io\/inject=disabled/);
  });

  it.each([
    ['no call described', ['-f', 'examples/eu-data-residency.yaml'], 2, /describe the call with --host/],
    ['an unknown provider', ['-f', 'examples/eu-data-residency.yaml', '--provider', 'openaii'], 2, /--provider "openaii": unknown provider/],
    ['an invalid policy', ['-f', '__BAD__', '--provider', 'openai'], 1, /is invalid \(run aigress policy validate\):\n[\s\S]*spec.providers\[1\]/],
  ])('refuses %s', async (_what, args, code, stderr) => {
    const r = await runCli(['policy', 'explain', ...args.map((a) => (a === '__BAD__' ? file('bad2.yaml', BAD) : a))]);
    expect(r.code).toBe(code);
    expect(r.stderr).toMatch(stderr);
  });
});
