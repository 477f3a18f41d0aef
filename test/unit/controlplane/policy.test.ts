import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// These tests exercise the schema and merge rules of fields that are not enforced yet (budgets and
// credentials); the refusal of such policies has its own tests (test/unit/shared/enforced.test.ts).
import type { EgressPolicySpec } from '../../../shared/policy/types.js';
import { createCA, issueLeaf, loadCA } from '../../../shared/pki.js';
import { kubeClients, kubeConfigFor, type KubeClients } from '../../../webhook/kube.js';
import { parseClusterDefault } from '../../../webhook/policy/compile.js';
import { PolicyController, type Condition, type PolicyResource } from '../../../webhook/policy/controller.js';
import { policyRoutes } from '../../../webhook/policy/server.js';
import { PolicyStore } from '../../../webhook/policy/store.js';
import { TokenReviewer } from '../../../webhook/tokenreview.js';
import { FakeApiServer } from '../../support/fake-apiserver.js';
import { captureLogger } from '../../support/log.js';
import { serveRoutes } from '../../support/route-server.js';

const defaults = parseClusterDefault(readFileSync(new URL('./fixtures/cluster-default.yaml', import.meta.url), 'utf8'), 'cluster-default.yaml');
const nsPolicy = parse(readFileSync(new URL('./fixtures/namespace-policy.yaml', import.meta.url), 'utf8')) as PolicyResource;
const EP = 'aigress.io/v1alpha1';

const waitFor = async <T>(fn: () => T | undefined | false, ms = 5000): Promise<T> => {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
};

/** What GET /v1/policy answers: a policy, or an error. */
interface PolicyAnswer {
  kind?: string;
  metadata?: { name: string; namespace: string };
  spec: EgressPolicySpec;
  error?: { status: number; reason: string; message: string };
}

interface Replica {
  controller: PolicyController;
  store: PolicyStore;
  url: string;
  close(): Promise<void>;
}

describe('EgressPolicy controller and GET /v1/policy', () => {
  let api: FakeApiServer;
  let caPem: string;
  let serving: { certPem: string; keyPem: string };
  let dispatcher: Agent;
  const replicas: Replica[] = [];
  const clients = (): KubeClients => kubeClients(kubeConfigFor({ server: api.url, caPem: api.caPem, token: api.adminToken, tlsServerName: 'localhost' }));

  async function replica(): Promise<Replica> {
    const k = clients();
    const store = new PolicyStore();
    const { log } = captureLogger();
    const controller = new PolicyController({ clients: k, defaults, store, log, ownNamespace: 'aigress-system', watchTimeoutSeconds: 30 });
    await controller.start();
    const reviewer = new TokenReviewer(k.authn);
    const srv = await serveRoutes(policyRoutes({ store, identify: (t) => reviewer.identify(t), log, maxWaitMs: 20_000 }), serving);
    const r = { controller, store, url: srv.url, close: async () => (controller.stop(), await srv.close()) };
    replicas.push(r);
    return r;
  }

  async function get(r: Replica, token: string | undefined, opts: { etag?: string; wait?: string } = {}): Promise<{ status: number; etag?: string; json?: PolicyAnswer }> {
    const res = await request(`${r.url}/v1/policy${opts.wait ? `?wait=${opts.wait}` : ''}`, {
      dispatcher,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(opts.etag ? { 'if-none-match': opts.etag } : {}) },
    });
    const text = await res.body.text();
    return { status: res.statusCode, etag: res.headers.etag as string | undefined, json: text ? (JSON.parse(text) as PolicyAnswer) : undefined };
  }

  const accepted = (ns: string, name: string): Condition | undefined =>
    ((api.get(EP, 'egresspolicies', ns, name) as PolicyResource | undefined)?.status?.conditions ?? []).find((c) => c.type === 'Accepted');

  beforeAll(async () => {
    api = await FakeApiServer.start({ bookmarkIntervalMs: 200 });
    const ca = await createCA('policy test CA');
    caPem = ca.certPem;
    serving = await issueLeaf(await loadCA(ca.certPem, ca.keyPem), { dnsNames: ['aigress.aigress-system.svc'] });
    dispatcher = new Agent({ connect: { ca: caPem, servername: 'aigress.aigress-system.svc' } });
    for (const [name, labels] of [
      ['team-a', { 'aigress.io/inject': 'enabled' }],
      ['team-b', {}],
      ['team-c', { 'aigress.io/inject': 'enabled' }],
      ['aigress-system', { 'aigress.io/inject': 'enabled' }],
    ] as const) {
      api.put('v1', 'namespaces', { metadata: { name, labels } });
    }
    api.addToken('a', { namespace: 'team-a', serviceAccount: 'app', audiences: ['aigress'] });
    api.addToken('b', { namespace: 'team-b', serviceAccount: 'app', audiences: ['aigress'] });
    api.addToken('c', { namespace: 'team-c', serviceAccount: 'app', audiences: ['aigress'] });
    api.addToken('sys', { namespace: 'aigress-system', serviceAccount: 'aigress', audiences: ['aigress'] });
    // team-c starts with an invalid policy: nothing good is known for it
    api.put(EP, 'egresspolicies', { ...nsPolicy, metadata: { name: 'bad', namespace: 'team-c' }, spec: { providers: ['openia'] } });
  });
  afterAll(async () => {
    for (const r of replicas) await r.close();
    await dispatcher.close();
    await api.close();
  });

  it('serves the cluster default to an opted-in namespace without a policy, and refuses the others', async () => {
    const r = await replica();
    const a = await get(r, 'a');
    expect(a.status).toBe(200);
    expect(a.etag).toMatch(/^"[\w-]{22}"$/);
    expect(a.json).toMatchObject({ kind: 'EgressPolicy', metadata: { name: 'cluster-default', namespace: 'team-a' }, spec: { providers: ['openai', 'anthropic'] } });
    expect((await get(r, 'a', { etag: a.etag })).status).toBe(304);
    const b = await get(r, 'b');
    expect([b.status, b.json?.error?.reason]).toEqual([403, 'NamespaceNotEnabled']);
    expect((await get(r, 'sys')).status).toBe(403); // the control plane's own namespace is never served
    expect((await get(r, undefined)).status).toBe(401);
    expect((await get(r, 'nope')).status).toBe(401);
    expect((await get(r, 'a', { wait: 'soon' })).json?.error?.message).toMatch(/wait must be a duration/);
  });

  it('fails closed (503) for a namespace whose only policy is invalid, and says why in its status', async () => {
    const r = replicas[0]!;
    const c = await get(r, 'c');
    expect([c.status, c.json?.error?.reason]).toEqual([503, 'PolicyUnavailable']);
    const cond = await waitFor(() => accepted('team-c', 'bad'));
    expect(cond).toMatchObject({ status: 'False', reason: 'Invalid', observedGeneration: 1 });
    expect(cond.message).toMatch(/^spec.providers\[0\]: unknown provider "openia"/);
  });

  it('wakes a long poll when a policy is applied, marks it Accepted, and keeps enforcement on an invalid edit', async () => {
    const r = replicas[0]!;
    const first = await get(r, 'a');
    const t0 = Date.now();
    const polled = get(r, 'a', { etag: first.etag, wait: '15s' });
    await new Promise((res) => setTimeout(res, 200));
    api.put(EP, 'egresspolicies', { ...nsPolicy, metadata: { name: 'team-a', namespace: 'team-a' } });
    const changed = await polled;
    expect(changed.status).toBe(200);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(changed.etag).not.toBe(first.etag);
    expect(changed.json?.spec.providers).toEqual(['openai', 'bedrock']);
    const ok = await waitFor(() => accepted('team-a', 'team-a'));
    expect(ok).toMatchObject({ status: 'True', reason: 'Accepted', observedGeneration: 1 });

    // An invalid edit: the condition flips, the served policy does not.
    const cur = api.get(EP, 'egresspolicies', 'team-a', 'team-a') as PolicyResource;
    const badSpec = structuredClone(cur.spec) as { filters: Array<{ pattern?: string }> };
    badSpec.filters[0]!.pattern = '(unclosed';
    api.put(EP, 'egresspolicies', { ...cur, spec: badSpec });
    const bad = await waitFor(() => accepted('team-a', 'team-a')?.status === 'False' && accepted('team-a', 'team-a'));
    expect(bad).toMatchObject({ reason: 'Invalid', observedGeneration: 2 });
    expect(bad.message).toMatch(/^spec.filters\[0\].pattern: invalid regular expression.*; the previous effective policy stays in force$/);
    const still = await get(r, 'a', { etag: changed.etag, wait: '1s' });
    expect(still.status).toBe(304);
    expect(still.etag).toBe(changed.etag);

    // Fixed again: accepted, served, and lastTransitionTime moves with the flip.
    const cur2 = api.get(EP, 'egresspolicies', 'team-a', 'team-a') as PolicyResource;
    const goodSpec = structuredClone(nsPolicy.spec) as { models: { deny: string[] } };
    goodSpec.models.deny = ['gpt-3.5*'];
    const polled2 = get(r, 'a', { etag: changed.etag, wait: '15s' });
    api.put(EP, 'egresspolicies', { ...cur2, spec: goodSpec });
    const fixed = await polled2;
    expect(fixed.json?.spec.models.deny).toEqual(['o1*', 'gpt-3.5*']);
    await waitFor(() => accepted('team-a', 'team-a')?.status === 'True');
    expect(accepted('team-a', 'team-a')?.observedGeneration).toBe(3);
  });

  it('refuses a second policy in a namespace as a conflict', async () => {
    api.put(EP, 'egresspolicies', { ...nsPolicy, metadata: { name: 'zz-second', namespace: 'team-a' } });
    const cond = await waitFor(() => accepted('team-a', 'zz-second'));
    expect(cond).toMatchObject({ status: 'False', reason: 'Conflict' });
    expect(cond.message).toMatch(/already has EgressPolicy team-a/);
    api.remove(EP, 'egresspolicies', 'team-a', 'zz-second');
  });

  it('follows namespace labels: opting in serves a policy, opting out answers 403 to the waiting proxy', async () => {
    const r = replicas[0]!;
    expect((await get(r, 'b')).status).toBe(403);
    api.put('v1', 'namespaces', { metadata: { name: 'team-b', labels: { 'aigress.io/inject': 'enabled' } } });
    await waitFor(() => r.store.get('team-b'));
    const got = await get(r, 'b');
    expect(got.status).toBe(200);
    const waiting = get(r, 'b', { etag: got.etag, wait: '15s' });
    await new Promise((res) => setTimeout(res, 100));
    api.put('v1', 'namespaces', { metadata: { name: 'team-b', labels: {} } });
    expect((await waiting).status).toBe(403);
  });

  it('survives the API server closing its watches and compacting history (relists on 410)', async () => {
    const r = replicas[0]!;
    const before = await get(r, 'a');
    api.compact();
    api.closeWatches();
    await new Promise((res) => setTimeout(res, 100));
    const cur = api.get(EP, 'egresspolicies', 'team-a', 'team-a') as PolicyResource;
    const spec = structuredClone(cur.spec) as { unmatchedEgress: string };
    spec.unmatchedEgress = 'passthrough';
    api.put(EP, 'egresspolicies', { ...cur, spec });
    const after = await get(r, 'a', { etag: before.etag, wait: '10s' });
    expect(after.status).toBe(200);
    expect(after.json?.spec.unmatchedEgress).toBe('passthrough');
  });

  it('two replicas agree on status without fighting over it', async () => {
    const r2 = await replica();
    const statusWrites = (): number => api.requests.filter((q) => q.method === 'PUT' && q.path.endsWith('/status')).length;
    const cur = api.get(EP, 'egresspolicies', 'team-a', 'team-a') as PolicyResource;
    const spec = structuredClone(cur.spec) as { providers: string[] };
    spec.providers = ['openai', 'bedrock', 'not-a-provider'];
    const before = statusWrites();
    api.put(EP, 'egresspolicies', { ...cur, spec });
    await waitFor(() => accepted('team-a', 'team-a')?.status === 'False');
    await new Promise((res) => setTimeout(res, 1500));
    const writes = statusWrites() - before;
    expect(writes).toBeGreaterThanOrEqual(1);
    expect(writes).toBeLessThanOrEqual(3); // one each at most, plus a 409 retry; no ping-pong
    const settled = statusWrites();
    await new Promise((res) => setTimeout(res, 1000));
    expect(statusWrites()).toBe(settled);
    // both still serve the last good policy, identically
    const [x, y] = await Promise.all([get(replicas[0]!, 'a'), get(r2, 'a')]);
    expect(x.etag).toBe(y.etag);
    expect(x.json?.spec.providers).toEqual(['openai', 'bedrock']);
  });
});
