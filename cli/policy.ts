import type { Command } from 'commander';
import { UserError } from '../shared/errors.js';
import { isObj, type Obj } from '../shared/json.js';
import { PROVIDER_IDS, type EgressPolicy, type EgressPolicySpec, type ProviderId } from '../shared/policy/types.js';
import { defaultPolicySpec } from '../shared/policy/validate.js';
import { defaultConfig } from '../webhook/config.js';
import { inject } from '../webhook/inject/inject.js';
import { compileNamespacePolicy } from '../webhook/policy/compile.js';
import { parseDocuments, readInputs, type ParsedDocument } from './inputs.js';
import { explain, formatExplanation, type ExplainRequest } from './policy/explain.js';
import { CLUSTER_POLICY_KIND, checkPolicyDocument, formatFinding, isPolicyDocument, labelOf, validateDocuments, type CheckedPolicy } from './policy/findings.js';
import { getPath, podTemplatePath } from './workloads.js';

// `aigress policy validate` and `aigress policy explain`: the control plane's checks and the proxy's decisions,
// offline, on files.

interface ValidateFlags {
  filename: string[];
  recursive?: boolean;
  namespace?: string;
  output?: string;
}

interface ExplainFlags {
  filename: string;
  pod?: string;
  default?: string;
  namespace?: string;
  host?: string;
  path?: string;
  provider?: string;
  model?: string;
  region?: string;
  output?: string;
}

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

async function documentsOf(names: readonly string[], recursive?: boolean): Promise<ParsedDocument[]> {
  const files = await readInputs(names, { recursive });
  return files.flatMap((f) => parseDocuments(f));
}

function outputFormat(o: string | undefined, allowed: readonly string[]): string {
  const v = o ?? 'text';
  if (!allowed.includes(v)) throw new UserError(`-o ${JSON.stringify(v)}: must be one of ${allowed.join(', ')}`, 2);
  return v;
}

/** The only policy document of `-f`, checked; UserError naming every finding otherwise. */
async function onePolicy(name: string, what: string): Promise<CheckedPolicy> {
  const docs = (await documentsOf([name])).filter((d) => isPolicyDocument(d.value));
  if (docs.length !== 1) throw new UserError(`${what} ${name}: expected exactly one EgressPolicy or ClusterEgressPolicy, found ${docs.length}`);
  const checked = checkPolicyDocument(docs[0]!);
  if (checked.findings.length > 0) throw new UserError(`${what} ${name} is invalid (run aigress policy validate):\n${checked.findings.map(formatFinding).join('\n')}`);
  return checked;
}

/** The pod (or a workload's pod template) in POD.yaml, with its namespace and whether aigress would inject it. */
async function podFacts(name: string, namespaceFlag: string | undefined): Promise<{ label: string; namespace: string; note: string }> {
  const docs = (await documentsOf([name])).filter((d) => isObj(d.value) && podTemplatePath((d.value as Obj).apiVersion, (d.value as Obj).kind) !== undefined);
  if (docs.length !== 1) throw new UserError(`--pod ${name}: expected exactly one Pod or workload (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob), found ${docs.length}`);
  const o = docs[0]!.value as Obj;
  const template = getPath(o, podTemplatePath(o.apiVersion, o.kind)!);
  const meta = isObj(o.metadata) ? o.metadata : {};
  const namespace = namespaceFlag ?? (typeof meta.namespace === 'string' ? meta.namespace : 'default');
  const r = inject(template, { namespace }, defaultConfig().injection);
  const note = r.denied
    ? `would be refused at admission: ${r.denied.message}`
    : r.patch.length > 0 ? 'gets the proxy at admission (in a namespace labelled aigress.io/inject=enabled)'
      : `gets no proxy: ${r.skippedReason ?? 'nothing to change'}; no rule below applies to it`;
  return { label: `${labelOf(o)} in namespace ${namespace}`, namespace, note };
}

function parseProvider(p: string | undefined): ProviderId | undefined {
  if (p === undefined) return undefined;
  if (!(PROVIDER_IDS as readonly string[]).includes(p)) throw new UserError(`--provider ${JSON.stringify(p)}: unknown provider (known: ${PROVIDER_IDS.join(', ')})`, 2);
  return p as ProviderId;
}

export function registerPolicy(program: Command): void {
  const policy = program.command('policy').description('Check EgressPolicy files and explain their decisions, offline.');

  policy
    .command('validate')
    .description('Run every check the control plane makes on EgressPolicy and ClusterEgressPolicy documents (schema, semantics, overlaps, one policy per namespace), offline. Each finding names the file, line, column, document and field; exit 1 on any.')
    .requiredOption('-f, --filename <file>', 'a file, a directory (its *.yaml, *.yml, *.json) or - for stdin; repeatable', collect)
    .option('-R, --recursive', 'also read the subdirectories of directories given with -f')
    .option('-n, --namespace <name>', 'namespace of policies that do not set one (for the one-per-namespace check)')
    .option('-o, --output <format>', 'text or json', 'text')
    .addHelpText('after', `
Examples:
  aigress policy validate -f eu-only.yaml
  aigress policy validate -f policies/ -R
  kubectl get egresspolicies -A -o yaml | aigress policy validate -f -
  aigress policy validate -f examples/ -o json`)
    .action(async (flags: ValidateFlags) => {
      const format = outputFormat(flags.output, ['text', 'json']);
      const report = validateDocuments(await documentsOf(flags.filename, flags.recursive), { namespace: flags.namespace });
      for (const s of report.skipped) process.stderr.write(`aigress: ${s}\n`);
      if (report.policies.length === 0) throw new UserError(`no EgressPolicy or ClusterEgressPolicy in ${flags.filename.join(', ')}`);
      if (format === 'json') {
        const policies = report.policies.map((p) => ({ source: p.doc.source, document: p.doc.index, policy: p.label, valid: p.findings.length === 0, mode: p.mode }));
        process.stdout.write(`${JSON.stringify({ policies, findings: report.findings }, null, 2)}\n`);
      } else {
        for (const p of report.policies) {
          if (p.findings.length === 0) process.stdout.write(`${p.doc.source}: document ${p.doc.index} (${p.label}): valid (mode ${p.mode})\n`);
          for (const f of p.findings) process.stdout.write(`${formatFinding(f)}\n`);
        }
      }
      const bad = report.policies.filter((p) => p.findings.length > 0).length;
      if (bad > 0) throw new UserError(`${report.findings.length} problem${report.findings.length === 1 ? '' : 's'} in ${bad} of ${report.policies.length} polic${report.policies.length === 1 ? 'y' : 'ies'}`);
    });

  policy
    .command('explain')
    .description('Explain which rule of a policy would allow or deny a call (by host and path, or by provider, model and region) and why, without sending anything. With --pod, for that pod: its namespace, and whether it gets the proxy at all.')
    .requiredOption('-f, --filename <file>', 'the EgressPolicy (or ClusterEgressPolicy) file')
    .option('--pod <file>', 'a Pod or workload manifest: explained for its namespace, and whether aigress injects it')
    .option('--default <file>', 'the cluster default (a ClusterEgressPolicy or the chart\'s default-policy.yaml) a namespace policy is merged over; default: the built-in default')
    .option('-n, --namespace <name>', 'the namespace to explain for (default: the pod\'s, else the policy\'s)')
    .option('--host <host>', 'the API host the app calls, e.g. bedrock-runtime.eu-central-1.amazonaws.com')
    .option('--path <request-path>', 'the request path, e.g. /v1/chat/completions (some providers carry model and region in it)')
    .option('--provider <id>', `the provider, when no --host is given (${PROVIDER_IDS.join(', ')})`)
    .option('--model <name>', 'the model the call names')
    .option('--region <region>', 'where the call is served (a what-if: overrides what host and path tell)')
    .option('-o, --output <format>', 'text or json', 'text')
    .addHelpText('after', `
Examples:
  aigress policy explain -f eu-only.yaml --provider openai --model gpt-4o --region us
  aigress policy explain -f eu-only.yaml --host bedrock-runtime.us-east-1.amazonaws.com \\
      --path /model/anthropic.claude-3-5-sonnet-20240620-v1:0/converse
  aigress policy explain -f team-a.yaml --default cluster-default.yaml --pod deploy.yaml --host api.openai.com --model gpt-4o-mini`)
    .action(async (flags: ExplainFlags) => {
      const format = outputFormat(flags.output, ['text', 'json']);
      const provider = parseProvider(flags.provider);
      if (!flags.host && !provider) throw new UserError('describe the call with --host (and --path), or with --provider', 2);
      const checked = await onePolicy(flags.filename, '-f');
      const pod = flags.pod ? await podFacts(flags.pod, flags.namespace) : undefined;
      let defaults: EgressPolicySpec = defaultPolicySpec();
      if (flags.default) defaults = (await onePolicy(flags.default, '--default')).policy!.spec;
      const own = checked.policy!;
      const namespace = flags.namespace ?? pod?.namespace ?? own.metadata.namespace ?? 'default';
      const notes: string[] = [];
      let effective: EgressPolicy;
      if (checked.kind === CLUSTER_POLICY_KIND) {
        effective = compiled(compileNamespacePolicy(own.spec, namespace));
        notes.push(`the cluster default, as it applies to namespace ${namespace} when that namespace has no EgressPolicy of its own`);
      } else {
        if (own.metadata.namespace && own.metadata.namespace !== namespace) {
          notes.push(`warning: this policy is in namespace ${own.metadata.namespace}, the call is from ${namespace}: in a cluster it would not apply`);
        }
        const resource = { ...checked.validated, metadata: { ...own.metadata, namespace } };
        effective = compiled(compileNamespacePolicy(defaults, namespace, resource));
        notes.push(`merged over ${flags.default ? `the cluster default in ${flags.default}` : 'the built-in cluster default'}`);
      }
      const req: ExplainRequest = { host: flags.host, path: flags.path, provider, model: flags.model, region: flags.region };
      const e = explain(effective, checked.mode, req);
      if (format === 'json') {
        process.stdout.write(`${JSON.stringify({ ...e, namespace, notes, ...(pod && { pod }) }, null, 2)}\n`);
        return;
      }
      if (pod) process.stdout.write(`pod ${pod.label}: ${pod.note}\n`);
      for (const n of notes) process.stdout.write(`note: ${n}\n`);
      process.stdout.write(formatExplanation(e));
    });
  for (const c of policy.commands) c.exitOverride().showHelpAfterError(`(run "aigress policy ${c.name()} --help" for usage)`);
}

function compiled(r: ReturnType<typeof compileNamespacePolicy>): EgressPolicy {
  if (!r.ok) throw new UserError(`the merged policy is invalid: ${r.issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`);
  return r.policy;
}
