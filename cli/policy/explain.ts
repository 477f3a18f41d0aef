import { compileGlobs, globToRegExp } from '../../shared/glob.js';
import { ADAPTERS, compileHostMatcher, type ProviderAdapter } from '../../shared/providers/index.js';
import type { EgressPolicy, ProviderId } from '../../shared/policy/types.js';
import { decideRegion, GLOBAL, isRegionGroup, regionGroup } from '../../shared/regions.js';
import type { Mode } from './findings.js';

// `aigress policy explain`'s core, pure: what the proxy would do with one described call under one effective
// policy, rule by rule in the order the proxy's pipeline runs them (route by host, regions, models), naming the
// field that decides, without sending anything. Budgets and filters depend on traffic and content: they are
// listed as what would apply, not decided.

export interface ExplainRequest {
  host?: string;
  path?: string;
  provider?: ProviderId;
  model?: string;
  /** Overrides the region the host and path tell (a what-if), or gives one when there is no host. */
  region?: string;
}

export interface Step {
  rule: 'route' | 'regions' | 'models' | 'budgets' | 'filters' | 'credentials';
  outcome: 'allow' | 'deny' | 'passthrough' | 'applies' | 'none';
  detail: string;
}

export interface Explanation {
  policy: string;
  mode: Mode;
  request: string;
  steps: Step[];
  /** What the proxy answers: allow (forwarded), passthrough (not inspected), deny with the status it answers. */
  decision: 'allow' | 'deny' | 'passthrough';
  status?: number;
  reason?: string;
}

const q = JSON.stringify;

function describeCall(adapter: ProviderAdapter, req: ExplainRequest, policy: EgressPolicy): { model?: string; aliases: string[]; reach?: readonly string[]; note?: string } {
  const body = Buffer.from(JSON.stringify(req.model === undefined ? {} : { model: req.model }));
  const d = adapter.describe(
    { host: req.host!.toLowerCase(), method: 'POST', path: req.path ?? '/', headers: { 'content-type': 'application/json' }, body },
    { azureResources: policy.spec.regions.azureResources },
  );
  return { model: d.model ?? req.model, aliases: [...(d.modelAliases ?? [])], reach: d.reach, note: d.regionNote };
}

/** Which `spec.regions.allow` entry admits `place`, as the proxy matches (exact, else its group). */
function allowEntry(place: string, allow: readonly string[]): number {
  const exact = allow.indexOf(place);
  if (exact >= 0 || place === GLOBAL || isRegionGroup(place)) return exact;
  const g = regionGroup(place);
  return g === undefined ? -1 : allow.indexOf(g);
}

export function explain(policy: EgressPolicy, mode: Mode, req: ExplainRequest): Explanation {
  const spec = policy.spec;
  const name = `${policy.metadata.namespace ? `${policy.metadata.namespace}/` : ''}${policy.metadata.name}`;
  const parts = [req.host && `host ${req.host}${req.path ?? ''}`, req.provider && `provider ${req.provider}`, req.model && `model ${req.model}`, req.region && `region ${req.region}`];
  const out: Explanation = { policy: name, mode, request: parts.filter(Boolean).join(', '), steps: [], decision: 'allow' };
  const deny = (status: number, reason: string): void => {
    if (out.decision !== 'deny') Object.assign(out, { decision: 'deny', status, reason });
  };

  // 1. Route: the proxy intercepts only hosts of the providers the policy lists.
  let adapter: ProviderAdapter | undefined;
  if (req.host) {
    adapter = compileHostMatcher(spec.providers)(req.host);
    const owner = ADAPTERS.find((a) => a.matchHost(req.host!.toLowerCase()));
    if (adapter && req.provider && adapter.id !== req.provider) {
      out.steps.push({ rule: 'route', outcome: 'none', detail: `host ${req.host} belongs to ${adapter.id}, not ${req.provider}: explained as ${adapter.id}` });
    }
    if (!adapter) {
      const why = owner ? `${req.host} is a ${owner.id} host, but ${owner.id} is not in spec.providers` : `${req.host} is no known provider's API host`;
      if (spec.unmatchedEgress === 'deny') {
        out.steps.push({ rule: 'route', outcome: 'deny', detail: `${why}; spec.unmatchedEgress: deny refuses the connection` });
        deny(0, 'unmatched_egress');
      } else {
        out.steps.push({ rule: 'route', outcome: 'passthrough', detail: `${why}; spec.unmatchedEgress: passthrough sends it on untouched (not inspected, no rule applies)` });
        out.decision = 'passthrough';
      }
      return out;
    }
  } else if (req.provider) {
    if (!spec.providers.includes(req.provider)) {
      const unmatched = spec.unmatchedEgress === 'deny';
      out.steps.push({ rule: 'route', outcome: unmatched ? 'deny' : 'passthrough', detail: `${req.provider} is not in spec.providers: its hosts are unmatched egress (spec.unmatchedEgress: ${spec.unmatchedEgress})` });
      if (unmatched) deny(0, 'unmatched_egress');
      else out.decision = 'passthrough';
      return out;
    }
  }
  const provider = adapter?.id ?? req.provider!;
  out.steps.push({ rule: 'route', outcome: 'allow', detail: `${provider} is intercepted (spec.providers[${spec.providers.indexOf(provider)}]): TLS is terminated and the rules below run` });

  // 2. What the call is: model and region, as the provider's adapter reads them from host and path.
  const call = adapter ? describeCall(adapter, req, policy) : { model: req.model, aliases: [] as string[], reach: undefined, note: undefined };
  let reach = call.reach;
  let note = call.note;
  if (req.region !== undefined) {
    reach = [req.region];
    note = `given with --region${call.reach?.length ? ` (the host says ${call.reach.join(', ')})` : ''}`;
  }

  // 3. Regions (451), as the regions processor decides.
  const r = spec.regions;
  const decision = decideRegion(reach, r);
  const where = reach && reach.length > 0 ? reach.join(', ') : 'unknown';
  if (decision.allowed) {
    if (!reach || reach.length === 0) out.steps.push({ rule: 'regions', outcome: 'allow', detail: `region unknown${note ? ` (${note})` : ''}; spec.regions.unknown: allow` });
    else if (r.allow.length === 0) out.steps.push({ rule: 'regions', outcome: 'allow', detail: `region ${where}; spec.regions.allow is empty: no region rule` });
    else {
      const by = reach.map((p) => `${p} by spec.regions.allow[${allowEntry(p, r.allow)}] ${q(r.allow[allowEntry(p, r.allow)])}`);
      out.steps.push({ rule: 'regions', outcome: 'allow', detail: `region ${by.join(', ')}${note ? ` (${note})` : ''}` });
    }
  } else if (decision.reason === 'region_unknown') {
    out.steps.push({ rule: 'regions', outcome: 'deny', detail: `region cannot be told${note ? ` (${note})` : ''} and spec.regions.unknown is deny: 451` });
    deny(451, 'region_unknown');
  } else {
    out.steps.push({ rule: 'regions', outcome: 'deny', detail: `region ${q(decision.place)}${note ? ` (${note})` : ''} is not in spec.regions.allow [${r.allow.join(', ')}]: 451` });
    deny(451, 'region_not_allowed');
  }

  // 4. Models (403), as the models processor decides: deny wins, then the allow list.
  const m = spec.models;
  const names = call.model === undefined ? [] : [call.model, ...call.aliases];
  const firstMatch = (globs: readonly string[]): number => globs.findIndex((g) => names.some((n) => globToRegExp(g).test(n)));
  if (m.allow.length === 0 && m.deny.length === 0) out.steps.push({ rule: 'models', outcome: 'allow', detail: 'spec.models is empty: every model' });
  else if (call.model === undefined) {
    if (m.allow.length === 0) out.steps.push({ rule: 'models', outcome: 'allow', detail: 'no model named (give --model); only a deny list, so nothing to match' });
    else {
      out.steps.push({ rule: 'models', outcome: 'deny', detail: `no model named and spec.models.allow lists models: a model-bearing call whose model cannot be read is denied (403); give --model` });
      deny(403, 'model_unknown');
    }
  } else if (compileGlobs(m.deny)(call.model) || names.some(compileGlobs(m.deny))) {
    const i = firstMatch(m.deny);
    out.steps.push({ rule: 'models', outcome: 'deny', detail: `model ${q(call.model)} matches spec.models.deny[${i}] ${q(m.deny[i])}: 403` });
    deny(403, 'model_denied');
  } else if (m.allow.length > 0) {
    const i = firstMatch(m.allow);
    if (i >= 0) out.steps.push({ rule: 'models', outcome: 'allow', detail: `model ${q(call.model)} matches spec.models.allow[${i}] ${q(m.allow[i])}` });
    else {
      out.steps.push({ rule: 'models', outcome: 'deny', detail: `model ${q(call.model)} matches nothing in spec.models.allow [${m.allow.join(', ')}]: 403` });
      deny(403, 'model_not_allowed');
    }
  } else out.steps.push({ rule: 'models', outcome: 'allow', detail: `model ${q(call.model)} matches no spec.models.deny pattern` });

  // 5. What depends on traffic or content: listed, not decided.
  if (spec.budgets.length === 0) out.steps.push({ rule: 'budgets', outcome: 'none', detail: 'no token budget' });
  spec.budgets.forEach((b, i) => out.steps.push({ rule: 'budgets', outcome: 'applies', detail: `spec.budgets[${i}]: ${b.tokens} tokens per ${b.per} per ${b.scope}; over it the proxy answers 429 (decided at run time)` }));
  spec.filters.forEach((f, i) => out.steps.push({ rule: 'filters', outcome: 'applies', detail: `spec.filters[${i}]: ${f.type} (${'action' in f ? f.action : 'external'}, ${f.phase}); decided on the content at run time` }));
  const cred = spec.credentials.findIndex((c) => c.provider === provider);
  if (cred >= 0) out.steps.push({ rule: 'credentials', outcome: 'applies', detail: `spec.credentials[${cred}]: the proxy adds the key from Secret ${spec.credentials[cred]!.secretRef.name}/${spec.credentials[cred]!.secretRef.key}` });
  return out;
}

export function formatExplanation(e: Explanation): string {
  const lines = [`policy ${e.policy} (mode ${e.mode})`, `call: ${e.request}`];
  for (const s of e.steps) lines.push(`  ${s.rule.padEnd(11)} ${s.outcome.padEnd(11)} ${s.detail}`);
  let verdict: string;
  if (e.decision === 'passthrough') verdict = 'passthrough: not inspected';
  else if (e.decision === 'allow') verdict = 'allow: forwarded to the provider';
  else if (e.status === 0) verdict = `deny: connection refused (${e.reason})`;
  else verdict = `deny: ${e.status} ${e.reason}`;
  if (e.decision === 'deny' && e.mode === 'audit') verdict = `would deny (${e.status === 0 ? 'connection refused' : e.status} ${e.reason}), but mode is audit: counted as decision="would-deny" and forwarded`;
  lines.push(`verdict: ${verdict}`);
  return `${lines.join('\n')}\n`;
}
