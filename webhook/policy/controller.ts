import { EGRESS_POLICY_KIND, LABEL_INJECT, SYSTEM_NAMESPACES } from '../../shared/constants.js';
import type { Logger } from '../../shared/log.js';
import type { EgressPolicy, EgressPolicySpec } from '../../shared/policy/types.js';
import { formatIssues } from '../../shared/policy/validate.js';
import { systemClock, type Clock } from '../../shared/renewal.js';
import { apiErrorMessage, apiStatus, type KubeClients } from '../kube.js';
import { compileClusterDefault, compileNamespacePolicy } from './compile.js';
import { Informer, type InformerHealth, type KubeObject } from './informer.js';
import type { PolicyStore } from './store.js';

// Watches namespaces, EgressPolicies and the ClusterEgressPolicy, keeps every opted-in namespace's effective
// policy in the store, and tells each policy's author what became of it through status.conditions (type
// Accepted). A rejected policy never changes what is served: the namespace keeps its previous effective policy.
//
// The cluster default is the ClusterEgressPolicy named `default` when there is one and it is valid, else the
// chart's value (`defaults`). An invalid one keeps the default that was in force (and says why in its status);
// deleting it brings back the chart's value. Its CRD may be missing (a cluster upgraded with `helm upgrade`,
// which installs no new CRDs): then the chart's value applies and the informer keeps trying in the background.

export const GROUP = 'aigress.io';
export const VERSION = 'v1alpha1';
export const PLURAL = 'egresspolicies';
export const CLUSTER_PLURAL = 'clusteregresspolicies';
export const CLUSTER_KIND = 'ClusterEgressPolicy';
/** The one ClusterEgressPolicy that counts. */
export const CLUSTER_DEFAULT = 'default';

export interface PolicyResource extends KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: KubeObject['metadata'] & { generation?: number; creationTimestamp?: string };
  spec?: unknown;
  status?: { observedGeneration?: number; conditions?: Condition[] };
}

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  observedGeneration?: number;
  lastTransitionTime: string;
}

/** The verdict on one EgressPolicy resource. */
export interface Verdict {
  status: 'True' | 'False';
  reason: 'Accepted' | 'Invalid' | 'NotEnforced' | 'Conflict' | 'NamespaceNotEnabled' | 'NotDefault';
  message: string;
}

export type NamespaceOutcome =
  | { kind: 'not-enabled' }
  | { kind: 'policy'; policy: EgressPolicy }
  /** Its policy is rejected: whatever was served before stays. */
  | { kind: 'rejected'; message: string };

const MAX_MESSAGE = 4000;

/**
 * Pure: the effective outcome of one namespace and the verdict on each of its EgressPolicies. One policy per
 * namespace takes effect, the oldest (creationTimestamp, then name); the others are refused as conflicts.
 */
export function evaluateNamespace(
  namespace: string,
  enabled: boolean,
  policies: readonly PolicyResource[],
  defaults: EgressPolicySpec,
): { outcome: NamespaceOutcome; verdicts: Map<string, Verdict> } {
  const verdicts = new Map<string, Verdict>();
  const sorted = [...policies].sort(
    (a, b) =>
      String(a.metadata?.creationTimestamp ?? '').localeCompare(String(b.metadata?.creationTimestamp ?? '')) ||
      String(a.metadata?.name).localeCompare(String(b.metadata?.name)),
  );
  const [active, ...rest] = sorted;
  let outcome: NamespaceOutcome = { kind: 'not-enabled' };
  if (!active) {
    if (enabled) {
      const r = compileNamespacePolicy(defaults, namespace);
      if (r.ok) outcome = { kind: 'policy', policy: r.policy };
    }
    return { outcome, verdicts };
  }
  const name = String(active.metadata?.name);
  const r = compileNamespacePolicy(defaults, namespace, active);
  if (!r.ok) {
    const text = formatIssues(r.issues);
    const message = (text.length > MAX_MESSAGE ? text.slice(0, MAX_MESSAGE) + '…' : text) + (enabled ? '; the previous effective policy stays in force' : '');
    // Only unenforced fields wrong with it: say so, so the author knows the policy itself is well formed.
    const reason = r.issues.every((i) => i.reason === 'NotEnforced') ? 'NotEnforced' : 'Invalid';
    verdicts.set(name, { status: 'False', reason, message });
    if (enabled) outcome = { kind: 'rejected', message: `EgressPolicy ${namespace}/${name} is invalid: ${text.slice(0, 500)}` };
  } else if (!enabled) {
    verdicts.set(name, { status: 'False', reason: 'NamespaceNotEnabled', message: `namespace ${namespace} is not labelled ${LABEL_INJECT}=enabled; this policy has no effect` });
  } else {
    verdicts.set(name, { status: 'True', reason: 'Accepted', message: `in effect for namespace ${namespace}, merged over the cluster default` });
    outcome = { kind: 'policy', policy: r.policy };
  }
  for (const other of rest) {
    verdicts.set(String(other.metadata?.name), {
      status: 'False',
      reason: 'Conflict',
      message: `namespace ${namespace} already has EgressPolicy ${name} (older); only one EgressPolicy per namespace takes effect`,
    });
  }
  return { outcome, verdicts };
}

/** The status to write for a verdict, keeping lastTransitionTime when the condition's status did not flip. */
export function desiredStatus(res: PolicyResource, v: Verdict, now: Date): NonNullable<PolicyResource['status']> {
  const generation = res.metadata?.generation ?? 0;
  const prev = res.status?.conditions?.find((c) => c.type === 'Accepted');
  const cond: Condition = {
    type: 'Accepted',
    status: v.status,
    reason: v.reason,
    message: v.message,
    observedGeneration: generation,
    lastTransitionTime: prev && prev.status === v.status ? prev.lastTransitionTime : now.toISOString().replace(/\.\d{3}Z$/, 'Z'),
  };
  const others = (res.status?.conditions ?? []).filter((c) => c.type !== 'Accepted');
  return { ...res.status, observedGeneration: generation, conditions: [...others, cond] };
}

/**
 * Pure: the cluster default to use and the verdict on each ClusterEgressPolicy. `previous` is the default in
 * force before (kept when `default` is invalid); `chart` is the chart's value (used when there is none).
 */
export function evaluateClusterDefault(
  resources: readonly PolicyResource[],
  chart: EgressPolicySpec,
  previous: EgressPolicySpec,
): { defaults: EgressPolicySpec; source: 'chart' | 'resource' | 'previous'; verdicts: Map<string, Verdict> } {
  const verdicts = new Map<string, Verdict>();
  for (const r of resources) {
    const name = String(r.metadata?.name);
    if (name !== CLUSTER_DEFAULT) {
      verdicts.set(name, { status: 'False', reason: 'NotDefault', message: `only the ClusterEgressPolicy named ${CLUSTER_DEFAULT} is used; this one has no effect` });
    }
  }
  const own = resources.find((r) => r.metadata?.name === CLUSTER_DEFAULT);
  if (!own) return { defaults: chart, source: 'chart', verdicts };
  // Checked as a namespace policy over nothing: the validator, then the overlaps, no merge.
  const doc = { apiVersion: own.apiVersion, kind: EGRESS_POLICY_KIND, metadata: { name: CLUSTER_DEFAULT }, spec: own.spec };
  const r = compileClusterDefault(doc);
  if (!r.ok) {
    const text = formatIssues(r.issues);
    verdicts.set(CLUSTER_DEFAULT, { status: 'False', reason: 'Invalid', message: `${text.length > MAX_MESSAGE ? text.slice(0, MAX_MESSAGE) + '…' : text}; the previous cluster default stays in force` });
    return { defaults: previous, source: 'previous', verdicts };
  }
  verdicts.set(CLUSTER_DEFAULT, { status: 'True', reason: 'Accepted', message: 'in effect as the cluster default (the chart\'s defaultPolicy is not used while this exists)' });
  return { defaults: r.spec, source: 'resource', verdicts };
}

function statusUpToDate(res: PolicyResource, want: NonNullable<PolicyResource['status']>): boolean {
  return JSON.stringify(res.status ?? {}) === JSON.stringify(want);
}

export interface PolicyControllerOptions {
  clients: KubeClients;
  defaults: EgressPolicySpec;
  store: PolicyStore;
  log: Logger;
  /** The control plane's own namespace: never served, whatever its labels. */
  ownNamespace: string;
  clock?: Clock;
  watchTimeoutSeconds?: number;
}

export class PolicyController {
  private readonly namespaces: Informer<KubeObject>;
  private readonly policies: Informer<PolicyResource>;
  private readonly clusterPolicies: Informer<PolicyResource>;
  /** The cluster default in force: the ClusterEgressPolicy's spec, or the chart's value. */
  private defaults: EgressPolicySpec;
  private readonly excluded: Set<string>;
  private readonly clock: Clock;
  /** Status writes in flight per policy key, and keys whose status must be looked at again afterwards. */
  private readonly writing = new Set<string>();
  private readonly rewrite = new Set<string>();
  private started = false;

  constructor(private readonly opts: PolicyControllerOptions) {
    this.clock = opts.clock ?? systemClock;
    this.defaults = opts.defaults;
    this.excluded = new Set([...SYSTEM_NAMESPACES, opts.ownNamespace]);
    const { core, custom, watch } = opts.clients;
    this.namespaces = new Informer<KubeObject>({
      name: 'namespaces',
      watch,
      path: '/api/v1/namespaces',
      list: async () => (await core.listNamespace()) as unknown as { items: KubeObject[]; metadata?: { resourceVersion?: string } },
      onEvent: (_t, ns) => this.onChange(String(ns.metadata?.name)),
      log: opts.log,
      clock: this.clock,
      watchTimeoutSeconds: opts.watchTimeoutSeconds,
    });
    this.policies = new Informer<PolicyResource>({
      name: 'egresspolicies',
      watch,
      path: `/apis/${GROUP}/${VERSION}/${PLURAL}`,
      list: async () => (await custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL })) as { items: PolicyResource[]; metadata?: { resourceVersion?: string } },
      onEvent: (_t, p) => this.onChange(String(p.metadata?.namespace)),
      log: opts.log,
      clock: this.clock,
      watchTimeoutSeconds: opts.watchTimeoutSeconds,
    });
    this.clusterPolicies = new Informer<PolicyResource>({
      name: 'clusteregresspolicies',
      watch,
      path: `/apis/${GROUP}/${VERSION}/${CLUSTER_PLURAL}`,
      list: async () => {
        try {
          return (await custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: CLUSTER_PLURAL })) as { items: PolicyResource[]; metadata?: { resourceVersion?: string } };
        } catch (err) {
          // No CRD: nothing to list, so the chart's value applies; the watch fails and is retried with backoff.
          if (apiStatus(err) === 404) return { items: [], metadata: { resourceVersion: '' } };
          throw err;
        }
      },
      onEvent: () => this.onClusterChange(),
      log: opts.log,
      clock: this.clock,
      watchTimeoutSeconds: opts.watchTimeoutSeconds,
    });
  }

  /** Each informer's state, for readiness and metrics. */
  health(): InformerHealth[] {
    return [this.namespaces.health(), this.policies.health(), this.clusterPolicies.health()];
  }

  /** The cluster default in force (for tests and logs). */
  clusterDefault(): EgressPolicySpec {
    return this.defaults;
  }

  /** Resolves once namespaces and policies are listed and every namespace's policy is in the store. */
  async start(): Promise<void> {
    await Promise.all([this.namespaces.start(), this.policies.start(), this.clusterPolicies.start()]);
    this.started = true;
    this.updateClusterDefault();
    const all = new Set([...this.namespaces.items().map((n) => String(n.metadata?.name)), ...this.policies.items().map((p) => String(p.metadata?.namespace))]);
    for (const ns of all) this.reconcile(ns);
    this.opts.store.markSynced();
    this.opts.log.info({ namespaces: this.opts.store.namespaces().length }, 'policies loaded');
  }

  stop(): void {
    this.namespaces.stop();
    this.policies.stop();
    this.clusterPolicies.stop();
  }

  private onClusterChange(): void {
    if (!this.started) return;
    const before = JSON.stringify(this.defaults);
    this.updateClusterDefault();
    if (JSON.stringify(this.defaults) === before) return;
    const all = new Set([...this.namespaces.items().map((n) => String(n.metadata?.name)), ...this.policies.items().map((p) => String(p.metadata?.namespace))]);
    for (const ns of all) this.reconcile(ns);
  }

  /** Picks the cluster default from the ClusterEgressPolicies and writes their status. */
  private updateClusterDefault(): void {
    const resources = this.clusterPolicies.items().filter((p) => p.kind === CLUSTER_KIND);
    const { defaults, source, verdicts } = evaluateClusterDefault(resources, this.opts.defaults, this.defaults);
    if (JSON.stringify(defaults) !== JSON.stringify(this.defaults)) this.opts.log.info({ source }, 'cluster default policy changed');
    this.defaults = defaults;
    for (const [name, verdict] of verdicts) this.writeStatus(`/${name}`, verdict);
  }

  private onChange(namespace: string): void {
    if (this.started) this.reconcile(namespace);
  }

  private reconcile(namespace: string): void {
    const ns = this.namespaces.items().find((n) => n.metadata?.name === namespace);
    const enabled = !!ns && ns.metadata?.labels?.[LABEL_INJECT] === 'enabled' && !this.excluded.has(namespace);
    const policies = this.policies.items().filter((p) => p.metadata?.namespace === namespace && p.kind === EGRESS_POLICY_KIND);
    const { outcome, verdicts } = evaluateNamespace(namespace, enabled, policies, this.defaults);
    const store = this.opts.store;
    if (outcome.kind === 'not-enabled') store.delete(namespace);
    else if (outcome.kind === 'policy') {
      const before = store.get(namespace)?.etag;
      store.setPolicy(namespace, outcome.policy);
      if (store.get(namespace)?.etag !== before) {
        this.opts.log.info({ namespace, policy: outcome.policy.metadata.name, etag: store.get(namespace)?.etag }, 'effective policy updated');
      }
    } else {
      this.opts.log.warn({ namespace, reason: outcome.message }, 'policy rejected; enforcement unchanged');
      if (store.get(namespace)?.kind !== 'policy') store.setUnavailable(namespace, outcome.message);
    }
    for (const [name, verdict] of verdicts) this.writeStatus(`${namespace}/${name}`, verdict);
  }

  /** Writes one policy's status if it differs; one write per policy at a time, the latest verdict wins. */
  private writeStatus(key: string, verdict: Verdict): void {
    if (this.writing.has(key)) {
      this.rewrite.add(key);
      return;
    }
    // `namespace/name` for an EgressPolicy, `/name` for a ClusterEgressPolicy.
    const cluster = key.startsWith('/');
    const res = cluster
      ? this.clusterPolicies.items().find((p) => `/${p.metadata?.name}` === key)
      : this.policies.items().find((p) => `${p.metadata?.namespace}/${p.metadata?.name}` === key);
    if (!res) return;
    const status = desiredStatus(res, verdict, new Date(this.clock.now()));
    if (statusUpToDate(res, status)) return;
    this.writing.add(key);
    let failed = false;
    const [namespace, name] = key.split('/') as [string, string];
    const write = cluster
      ? this.opts.clients.custom.replaceClusterCustomObjectStatus({ group: GROUP, version: VERSION, plural: CLUSTER_PLURAL, name, body: { ...res, status } })
      : this.opts.clients.custom.replaceNamespacedCustomObjectStatus({ group: GROUP, version: VERSION, plural: PLURAL, namespace, name, body: { ...res, status } });
    write
      .then(
        () => this.opts.log.info({ policy: key, accepted: verdict.status, reason: verdict.reason }, 'policy status written'),
        (err: unknown) => {
          // 409: someone wrote first; the watch brings the newer object and we look again. 404: deleted.
          const code = apiStatus(err);
          if (code !== 409 && code !== 404) this.opts.log.warn({ policy: key, err: apiErrorMessage(err) }, 'policy status write failed');
          if (code !== 404 && code !== 409) {
            failed = true;
            this.rewrite.add(key);
          }
        },
      )
      .finally(() => {
        this.writing.delete(key);
        if (this.rewrite.delete(key)) {
          // Retry after a pause when the write failed; at once when only a newer verdict is waiting.
          this.clock.setTimeout(() => (cluster ? this.updateClusterDefault() : this.reconcile(namespace)), failed ? 1000 : 0);
        }
      });
  }
}
