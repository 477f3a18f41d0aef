import { EGRESS_POLICY_API_VERSION, EGRESS_POLICY_KIND } from '../../shared/constants.js';
import type { EgressPolicy, EgressPolicySpec } from '../../shared/policy/types.js';
import { UserError } from '../../shared/errors.js';
import { parsePolicy } from '../../shared/policy/load.js';
import { formatIssues, validatePolicy, type PolicyIssue } from '../../shared/policy/validate.js';
import { isObj } from '../../shared/json.js';

// The effective policy of a namespace: the cluster default (from the chart's values) merged with the
// namespace's own EgressPolicy. Pure: same inputs, same output, byte for byte (the ETag depends on it).
//
// Precedence. The cluster default is a default, not a floor, except where it can only add protection:
//   - providers, regions, models.allow, unmatchedEgress, metering (and any other field): the namespace's value
//     when its policy sets the field, otherwise the default's; credentials: the namespace's per provider;
//   - mode: the namespace's, except that audit is refused while the default (in enforce) has filters, budgets
//     or denied models, since audit would let them pass;
//   - filters, models.deny, budgets: the default's always apply, and the namespace's are added after them. A
//     namespace cannot switch off the platform's PII filter, denied models or budgets; it can add its own.

/** Name given to the effective policy of a namespace that has no EgressPolicy of its own. */
export const CLUSTER_DEFAULT_NAME = 'cluster-default';

export type CompileResult = { ok: true; policy: EgressPolicy } | { ok: false; issues: PolicyIssue[] };

const has = (o: unknown, k: string): boolean => isObj(o) && Object.hasOwn(o, k);

/**
 * Rules that each parse but contradict or repeat each other: reported (with field paths) instead of letting one
 * silently win.
 */
export function overlapIssues(spec: EgressPolicySpec): PolicyIssue[] {
  const issues: PolicyIssue[] = [];
  const dupes = (list: readonly string[], path: string, what: string): void => {
    const seen = new Map<string, number>();
    list.forEach((v, i) => {
      const first = seen.get(v);
      if (first !== undefined) issues.push({ path: `${path}[${i}]`, message: `${what} ${JSON.stringify(v)} repeats ${path}[${first}]` });
      else seen.set(v, i);
    });
  };
  dupes(spec.providers, 'spec.providers', 'provider');
  dupes(spec.regions.allow, 'spec.regions.allow', 'region');
  dupes(spec.models.allow, 'spec.models.allow', 'model pattern');
  dupes(spec.models.deny, 'spec.models.deny', 'model pattern');
  spec.models.deny.forEach((d, i) => {
    const j = spec.models.allow.indexOf(d);
    if (j >= 0) issues.push({ path: `spec.models.deny[${i}]`, message: `${JSON.stringify(d)} is both allowed (spec.models.allow[${j}]) and denied` });
  });
  const windows = new Map<string, number>();
  spec.budgets.forEach((b, i) => {
    // Entries that count different things (tokens vs usd, a token type, some models or providers) do not overlap.
    const k = JSON.stringify([b.scope, b.per, b.usd === undefined ? 'tokens' : 'usd', b.type, b.models, b.providers]);
    const first = windows.get(k);
    if (first !== undefined) {
      issues.push({ path: `spec.budgets[${i}]`, message: `overlaps spec.budgets[${first}] (same scope ${b.scope} and window ${b.per}); keep one` });
    } else windows.set(k, i);
  });
  const creds = new Map<string, number>();
  spec.credentials.forEach((c, i) => {
    const first = creds.get(c.provider);
    if (first !== undefined) issues.push({ path: `spec.credentials[${i}]`, message: `second credential for provider ${c.provider} (first: spec.credentials[${first}])` });
    else creds.set(c.provider, i);
  });
  return issues;
}

/**
 * Filter names key the metrics and log lines, so they must be unique in the effective policy: a name the
 * namespace chose that a cluster default filter already has is refused, naming both fields. Default names
 * (`pii-0`, not written by the author) are not the author's choice: they are numbered apart by the pipeline.
 */
export function filterNameClashes(defaults: EgressPolicySpec, own: EgressPolicySpec, raw: Record<string, unknown>): PolicyIssue[] {
  const rawFilters = Array.isArray(raw.filters) ? raw.filters : [];
  const byName = new Map<string, number>();
  defaults.filters.forEach((f, j) => {
    if (!byName.has(f.name)) byName.set(f.name, j);
  });
  const issues: PolicyIssue[] = [];
  own.filters.forEach((f, i) => {
    if (!has(rawFilters[i], 'name')) return;
    const j = byName.get(f.name);
    if (j === undefined) return;
    issues.push({
      path: `spec.filters[${i}].name`,
      message: `${JSON.stringify(f.name)} is already the name of the cluster default policy's spec.filters[${j}] (${defaults.filters[j]!.type}), whose filters run first in this namespace; filter names must be unique in the effective policy (metrics and log lines are keyed by them): choose another`,
    });
  });
  return issues;
}

/**
 * Validates a namespace's EgressPolicy resource (syntax via the shared validator, then overlaps) and merges it
 * over the cluster default. `resource` undefined means the namespace has none: the default applies as is.
 */
export function compileNamespacePolicy(defaults: EgressPolicySpec, namespace: string, resource?: unknown): CompileResult {
  const result = (name: string, spec: EgressPolicySpec): CompileResult => ({
    ok: true,
    policy: { apiVersion: EGRESS_POLICY_API_VERSION, kind: EGRESS_POLICY_KIND, metadata: { name, namespace }, spec },
  });
  if (resource === undefined) return result(CLUSTER_DEFAULT_NAME, structuredClone(defaults));
  if (!isObj(resource)) return { ok: false, issues: [{ path: '', message: 'policy must be an object' }] };
  // The resource as the API server holds it: only name/namespace of its metadata matter, status is ours.
  const meta = isObj(resource.metadata) ? resource.metadata : {};
  const doc = { apiVersion: resource.apiVersion, kind: resource.kind, metadata: { name: meta.name, namespace: meta.namespace }, spec: resource.spec };
  const v = validatePolicy(doc);
  if (!v.ok) return v;
  const own = v.policy.spec;
  const overlaps = overlapIssues(own);
  // Audit mode lets every denial pass, so a namespace must not use it to switch off the platform's floor.
  if (own.mode === 'audit' && defaults.mode !== 'audit' && (defaults.filters.length > 0 || defaults.budgets.length > 0 || defaults.models.deny.length > 0)) {
    overlaps.push({
      path: 'spec.mode',
      message: 'audit would switch off the cluster default policy\'s filters, budgets and denied models, which a namespace cannot remove; ask the platform team to set audit in the cluster default, or use enforce',
    });
  }
  const raw = isObj(resource.spec) ? resource.spec : {};
  overlaps.push(...filterNameClashes(defaults, own, raw));
  if (overlaps.length > 0) return { ok: false, issues: overlaps };
  // Start from the default; every field the namespace sets replaces it (fields added to the spec later get
  // this rule too); then the protective lists are recomputed as unions.
  const spec = structuredClone(defaults);
  for (const k of Object.keys(own) as Array<keyof EgressPolicySpec>) {
    if (has(raw, k)) (spec as unknown as Record<string, unknown>)[k] = structuredClone(own[k]);
  }
  spec.models = {
    allow: structuredClone(has(raw.models, 'allow') ? own.models.allow : defaults.models.allow),
    deny: [...new Set([...defaults.models.deny, ...own.models.deny])],
  };
  spec.budgets = structuredClone([...defaults.budgets, ...own.budgets]);
  spec.filters = structuredClone([...defaults.filters, ...own.filters]);
  spec.credentials = structuredClone([
    ...own.credentials,
    ...defaults.credentials.filter((d) => !own.credentials.some((c) => c.provider === d.provider)),
  ]);
  return result(v.policy.metadata.name, spec);
}

/** The ClusterEgressPolicy's document, checked as the cluster default is (validator, then overlaps). */
export function compileClusterDefault(doc: unknown): { ok: true; spec: EgressPolicySpec } | { ok: false; issues: PolicyIssue[] } {
  const v = validatePolicy(doc);
  if (!v.ok) return v;
  const overlaps = overlapIssues(v.policy.spec);
  return overlaps.length > 0 ? { ok: false, issues: overlaps } : { ok: true, spec: v.policy.spec };
}

/**
 * The cluster default from its file (an EgressPolicy document, rendered from the chart's values): fully checked
 * at start, since every namespace inherits it. Throws UserError naming the file and the field.
 */
export function parseClusterDefault(text: string, source: string): EgressPolicySpec {
  const spec = parsePolicy(text, source).spec;
  const overlaps = overlapIssues(spec);
  if (overlaps.length > 0) throw new UserError(`${source}: invalid cluster default policy: ${formatIssues(overlaps)}`);
  return spec;
}
