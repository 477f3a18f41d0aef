import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiStatus, kubeClients, kubeConfigFor, type KubeClients } from '../../../webhook/kube.js';
import { FakeApiServer } from '../../support/fake-apiserver.js';

// The fake is only useful if the real client library accepts it: every check here goes through
// @kubernetes/client-node, the same calls the control plane makes.

let api: FakeApiServer;
let k: KubeClients;

beforeAll(async () => {
  api = await FakeApiServer.start({ bookmarkIntervalMs: 100 });
  k = kubeClients(kubeConfigFor({ server: api.url, caPem: api.caPem, token: api.adminToken, tlsServerName: 'localhost' }));
});
afterAll(async () => {
  await api.close();
});

interface WatchEvent {
  type: string;
  object: { metadata?: { name?: string; resourceVersion?: string } };
}

function collectWatch(path: string, params: Record<string, string | number | boolean | undefined>): { events: WatchEvent[]; done: Promise<unknown>; stop(): void } {
  const events: WatchEvent[] = [];
  let stop = (): void => {};
  const done = new Promise<unknown>((resolve) => {
    void k.watch
      .watch(path, params, (type, object) => events.push({ type, object: object as WatchEvent['object'] }), (err) => resolve(err))
      .then((ctl) => {
        stop = () => ctl.abort();
      });
  });
  return { events, done, stop: () => stop() };
}

const until = async (cond: () => boolean, ms = 3000): Promise<void> => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe('fake apiserver through @kubernetes/client-node', () => {
  it('refuses a request without the bearer token (401 Status)', async () => {
    const anon = kubeClients(kubeConfigFor({ server: api.url, caPem: api.caPem, token: 'wrong', tlsServerName: 'localhost' }));
    const err: unknown = await anon.core.listNamespace().catch((e: unknown) => e);
    expect(apiStatus(err)).toBe(401);
  });

  it('creates a Secret once; the second create is 409 AlreadyExists; a missing one is 404', async () => {
    const body = { metadata: { name: 's1' }, type: 'kubernetes.io/tls', stringData: { 'tls.crt': 'C', 'tls.key': 'K' } };
    const created = await k.core.createNamespacedSecret({ namespace: 'ns1', body });
    expect(created.data).toEqual({ 'tls.crt': Buffer.from('C').toString('base64'), 'tls.key': Buffer.from('K').toString('base64') });
    expect(created.metadata?.resourceVersion).toMatch(/^\d+$/);
    const dup: unknown = await k.core.createNamespacedSecret({ namespace: 'ns1', body }).catch((e: unknown) => e);
    expect(apiStatus(dup)).toBe(409);
    expect(JSON.parse((dup as { body: string }).body)).toMatchObject({ kind: 'Status', reason: 'AlreadyExists', code: 409 });
    const missing: unknown = await k.core.readNamespacedSecret({ namespace: 'ns1', name: 'nope' }).catch((e: unknown) => e);
    expect(apiStatus(missing)).toBe(404);
    const got = await k.core.readNamespacedSecret({ namespace: 'ns1', name: 's1' });
    expect(got.metadata?.uid).toBe(created.metadata?.uid);
  });

  it('answers TokenReview for known tokens with the ServiceAccount identity, and only for the right audience', async () => {
    api.addToken('tok-a', { namespace: 'team-a', serviceAccount: 'app', audiences: ['aigress'], podName: 'app-1' });
    const ok = await k.authn.createTokenReview({ body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token: 'tok-a', audiences: ['aigress'] } } });
    expect(ok.status?.authenticated).toBe(true);
    expect(ok.status?.user?.username).toBe('system:serviceaccount:team-a:app');
    expect(ok.status?.user?.extra?.['authentication.kubernetes.io/pod-name']).toEqual(['app-1']);
    expect(ok.status?.audiences).toEqual(['aigress']);
    const wrongAud = await k.authn.createTokenReview({ body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token: 'tok-a', audiences: ['vault'] } } });
    expect(wrongAud.status?.authenticated).toBeFalsy();
    expect(wrongAud.status?.error).toMatch(/audiences/);
    const unknown = await k.authn.createTokenReview({ body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token: 'forged', audiences: ['aigress'] } } });
    expect(unknown.status?.authenticated).toBeFalsy();
  });

  it('JSON-patches a MutatingWebhookConfiguration by name; a failed test op is 422 and changes nothing', async () => {
    api.put('admissionregistration.k8s.io/v1', 'mutatingwebhookconfigurations', {
      metadata: { name: 'mwc' },
      webhooks: [{ name: 'a.aigress.io', clientConfig: { service: { name: 's', namespace: 'n' } }, admissionReviewVersions: ['v1'], sideEffects: 'None' }],
    });
    const patched = await k.admission.patchMutatingWebhookConfiguration({
      name: 'mwc',
      body: [
        { op: 'test', path: '/webhooks/0/name', value: 'a.aigress.io' },
        { op: 'add', path: '/webhooks/0/clientConfig/caBundle', value: 'Q0E=' },
      ],
    });
    expect(patched.webhooks?.[0]?.clientConfig.caBundle).toBe('Q0E=');
    const bad: unknown = await k.admission
      .patchMutatingWebhookConfiguration({ name: 'mwc', body: [{ op: 'test', path: '/webhooks/0/name', value: 'other' }, { op: 'remove', path: '/webhooks/0' }] })
      .catch((e: unknown) => e);
    expect(apiStatus(bad)).toBe(422);
    expect((await k.admission.readMutatingWebhookConfiguration({ name: 'mwc' })).webhooks).toHaveLength(1);
    expect(api.requests.filter((r) => r.method === 'PATCH').every((r) => r.contentType === 'application/json-patch+json')).toBe(true);
  });

  it('lists with a resourceVersion, then watches from it: changes after it, bookmarks when asked', async () => {
    api.put('v1', 'namespaces', { metadata: { name: 'w1' } });
    const list = await k.core.listNamespace();
    const rv = list.metadata!.resourceVersion!;
    expect(list.items.map((n) => n.metadata?.name)).toContain('w1');
    const w = collectWatch('/api/v1/namespaces', { resourceVersion: rv, allowWatchBookmarks: true });
    await until(() => api.openWatches > 0);
    api.put('v1', 'namespaces', { metadata: { name: 'w2', labels: { x: 'y' } } });
    await until(() => w.events.some((e) => e.type === 'ADDED' && e.object.metadata?.name === 'w2'));
    expect(w.events.some((e) => e.object.metadata?.name === 'w1')).toBe(false); // already in the list
    await until(() => w.events.some((e) => e.type === 'BOOKMARK'));
    const bm = w.events.find((e) => e.type === 'BOOKMARK')!;
    expect(Number(bm.object.metadata?.resourceVersion)).toBeGreaterThan(Number(rv));
    api.closeWatches();
    expect(await w.done).toBeNull(); // a server-side close ends the watch cleanly
  });

  it('answers a watch from a compacted resourceVersion with an ERROR event carrying 410 Expired', async () => {
    const rv = (await k.core.listNamespace()).metadata!.resourceVersion!;
    api.put('v1', 'namespaces', { metadata: { name: 'w3' } });
    api.compact();
    const w = collectWatch('/api/v1/namespaces', { resourceVersion: rv });
    await w.done;
    expect(w.events).toHaveLength(1);
    expect(w.events[0]!.type).toBe('ERROR');
    expect(w.events[0]!.object).toMatchObject({ kind: 'Status', code: 410, reason: 'Expired' });
  });

  it('custom resources: generation counts spec changes; /status writes only status and checks resourceVersion', async () => {
    const group = 'aigress.io';
    const version = 'v1alpha1';
    const plural = 'egresspolicies';
    const created = (await k.custom.createNamespacedCustomObject({
      group, version, plural, namespace: 'team-a',
      body: { apiVersion: 'aigress.io/v1alpha1', kind: 'EgressPolicy', metadata: { name: 'p' }, spec: { providers: ['openai'] }, status: { bogus: true } },
    })) as { metadata: { generation: number; resourceVersion: string }; status?: unknown };
    expect(created.metadata.generation).toBe(1);
    expect(created.status).toBeUndefined(); // status is not writable through the main resource
    const withStatus = (await k.custom.replaceNamespacedCustomObjectStatus({
      group, version, plural, namespace: 'team-a', name: 'p',
      body: { ...created, spec: { providers: ['anthropic'] }, status: { conditions: [{ type: 'Accepted', status: 'True' }] } },
    })) as { metadata: { generation: number; resourceVersion: string }; spec: unknown; status: unknown };
    expect(withStatus.spec).toEqual({ providers: ['openai'] }); // spec ignored on /status
    expect(withStatus.metadata.generation).toBe(1);
    expect(withStatus.status).toEqual({ conditions: [{ type: 'Accepted', status: 'True' }] });
    const stale: unknown = await k.custom
      .replaceNamespacedCustomObjectStatus({ group, version, plural, namespace: 'team-a', name: 'p', body: { ...created, status: {} } })
      .catch((e: unknown) => e);
    expect(apiStatus(stale)).toBe(409);
    const edited = api.put('aigress.io/v1alpha1', 'egresspolicies', { apiVersion: 'aigress.io/v1alpha1', kind: 'EgressPolicy', metadata: { name: 'p', namespace: 'team-a' }, spec: { providers: ['gemini'] } });
    expect((edited.metadata as { generation: number }).generation).toBe(2);
    expect(edited.status).toEqual(withStatus.status); // kept across a spec edit
    const list = (await k.custom.listClusterCustomObject({ group, version, plural })) as { items: Array<{ kind?: string }>; metadata: { resourceVersion: string } };
    expect(list.items[0]!.kind).toBe('EgressPolicy');
    expect(list.metadata.resourceVersion).toMatch(/^\d+$/);
  });

  it('refuses selectors it does not implement instead of ignoring them', async () => {
    const err: unknown = await k.core.listNamespace({ labelSelector: 'a=b' }).catch((e: unknown) => e);
    expect(apiStatus(err)).toBe(400);
  });
});
