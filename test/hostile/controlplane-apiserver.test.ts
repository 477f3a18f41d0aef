import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { Agent, request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { certificateNames } from '../../shared/certificate-names.js';
import { createCsr } from '../../shared/leaf.js';
import type { EgressPolicy } from '../../shared/policy/types.js';
import { defaultPolicySpec } from '../../shared/policy/validate.js';
import { clusterSources } from '../../sidecar/proxy/sources/cluster.js';
import { readinessOf, startControlPlane } from '../../webhook/control-plane.js';
import { ControlPlaneServer } from '../../webhook/server.js';
import { kubeClients, kubeConfigFor } from '../../webhook/kube.js';
import { Informer, type KubeObject } from '../../webhook/policy/informer.js';
import { startLocalControlPlane, type LocalControlPlane } from '../support/control-plane.js';
import { FakeApiServer } from '../support/fake-apiserver.js';
import { captureLogger } from '../support/log.js';

// The API server misbehaving under the control plane: a 410 Gone storm, a watch that goes silent (before or
// after its headers), and the API server unreachable altogether, with the control plane in turn going away
// under a proxy. What must hold: the last good policy and certificates keep being served (by the control plane,
// and by the proxy when the control plane is gone too), a 410 storm does not turn into a list loop, a stalled
// watch is noticed and replaced, and /readyz says what is broken without taking a working replica out.

const EP = 'aigress.io/v1alpha1';

const waitFor = async <T>(fn: () => T | undefined | false | Promise<T | undefined | false>, ms = 15_000): Promise<T> => {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 25));
  }
};
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('the namespace informer against a misbehaving API server', () => {
  let api: FakeApiServer;
  let informer: Informer<KubeObject> | undefined;
  const events: string[] = [];

  beforeAll(async () => {
    api = await FakeApiServer.start({ bookmarkIntervalMs: 100 });
    api.put('v1', 'namespaces', { metadata: { name: 'team-a' } });
  });
  afterEach(() => informer?.stop());
  afterAll(() => api.close());

  function start(extra: { stallTimeoutMs?: number } = {}): Informer<KubeObject> {
    const clients = kubeClients(kubeConfigFor({ server: api.url, caPem: api.caPem, token: api.adminToken, tlsServerName: 'localhost' }));
    const { log } = captureLogger();
    informer = new Informer<KubeObject>({
      name: 'namespaces',
      watch: clients.watch,
      path: '/api/v1/namespaces',
      list: async () => (await clients.core.listNamespace()) as unknown as { items: KubeObject[]; metadata?: { resourceVersion?: string } },
      onEvent: (type, o) => events.push(`${type} ${o.metadata?.name}`),
      log,
      backoffBaseMs: 100,
      backoffMaxMs: 400,
      ...extra,
    });
    return informer;
  }
  const lists = (): number => api.requests.filter((r) => r.method === 'GET' && r.path === '/api/v1/namespaces' && !r.query.includes('watch=true')).length;
  const watches = (): number => api.requests.filter((r) => r.path === '/api/v1/namespaces' && r.query.includes('watch=true')).length;

  it('a 410 storm: lists again at once, then with backoff, keeping what it has; the storm over, it is current again', async () => {
    const inf = start();
    await inf.start();
    await waitFor(() => api.openWatches > 0);
    const before = lists();
    api.expireWatches(true);
    api.closeWatches(); // the watch resumes from its resourceVersion: 410, list, watch: 410 again, …
    await sleep(2000);
    const during = lists() - before;
    // With backoff (100, 200, 400, 400 … ms) about 7 lists fit in 2 s; a relist on every 410 made hundreds.
    console.log(`410 storm: ${during} lists in 2 s (watches: ${watches()})`);
    expect(during).toBeGreaterThanOrEqual(2);
    expect(during).toBeLessThanOrEqual(12);
    expect(inf.items().map((n) => n.metadata?.name)).toContain('team-a');
    expect(inf.health().problem).toMatch(/410 Gone \d+ times in a row/);

    api.expireWatches(false);
    api.put('v1', 'namespaces', { metadata: { name: 'after-storm' } });
    await waitFor(() => inf.items().some((n) => n.metadata?.name === 'after-storm'));
    await waitFor(() => inf.health().problem === undefined);
  });

  it('a watch that goes silent, then one that is never answered: each is noticed, aborted and replaced', async () => {
    const inf = start({ stallTimeoutMs: 600 });
    await inf.start();
    await waitFor(() => api.openWatches > 0);
    const watchesBefore = watches();
    api.stallWatches(true); // the open watch goes dead: no events, no bookmarks, no end
    api.put('v1', 'namespaces', { metadata: { name: 'during-stall' } });
    // the watchdog gives up on it and asks again; that request is accepted and never answered
    await waitFor(() => api.unansweredWatches > 0);
    expect(watches()).toBeGreaterThan(watchesBefore);
    expect(inf.health().problem).toMatch(/watch stalled/);
    expect(inf.items().map((n) => n.metadata?.name)).toContain('team-a'); // kept meanwhile
    api.stallWatches(false);
    // The unanswered request is aborted too (before its headers: nothing to read yet), not left pending for
    // good, and the next watch brings what happened during the stall.
    await waitFor(() => inf.items().some((n) => n.metadata?.name === 'during-stall'));
    await waitFor(() => api.unansweredWatches === 0);
    await waitFor(() => inf.health().problem === undefined);
    expect(events).toContain('ADDED during-stall');
  });
});

describe('readiness rule (pure)', () => {
  const now = 1_000_000;
  it('is not ready before the policies are loaded, and says what is missing', () => {
    const r = readinessOf(false, [{ name: 'namespaces', synced: false, problem: 'list failing: connect ECONNREFUSED', since: now - 5000 }], now);
    expect(r.ready).toBe(false);
    expect(r.notes).toEqual(['policies not loaded yet (the policy and certificate endpoints answer 503)', 'namespaces: not listed yet (list failing: connect ECONNREFUSED)']);
  });
  it('stays ready once loaded whatever the API server does, listing what is degraded', () => {
    const r = readinessOf(true, [
      { name: 'namespaces', synced: true },
      { name: 'egresspolicies', synced: true, problem: 'watch failing: HTTP 503', since: now - 12_000 },
      { name: 'secrets', synced: false, problem: 'list failing: HTTP 403' },
    ], now);
    expect(r.ready).toBe(true);
    expect(r.notes).toEqual([
      'degraded: egresspolicies: watch failing: HTTP 503 for 12 s; serving the last good state',
      'secrets: not listed yet (list failing: HTTP 403)',
    ]);
  });
});

describe('a replica that starts while the policies cannot be listed', () => {
  it('answers /readyz 503 naming what is missing, then 200 once they are in', async () => {
    const api = await FakeApiServer.start({ bookmarkIntervalMs: 200 });
    api.put('v1', 'namespaces', { metadata: { name: 'aigress-system' } });
    api.injectFault('GET', '/apis/aigress.io/v1alpha1/egresspolicies', 503, 2);
    const { log } = captureLogger();
    const clients = kubeClients(kubeConfigFor({ server: api.url, caPem: api.caPem, token: api.adminToken, tlsServerName: 'localhost' }));
    const cp = await startControlPlane({
      clients,
      namespace: 'aigress-system',
      serviceName: 'aigress',
      extraDnsNames: ['localhost'],
      caSource: { kind: 'secret', namespace: 'aigress-system', name: 'aigress-ca', bootstrap: true },
      defaults: defaultPolicySpec(),
      log,
      registry: new Registry(),
    });
    const server = await ControlPlaneServer.create({ tls: cp.serving.current(), logger: log });
    server.setReadiness(() => cp.readiness());
    const port = await server.listen(0, '127.0.0.1');
    const dispatcher = new Agent({ connect: { ca: cp.caPem, servername: 'localhost' } });
    const readyz = async (): Promise<{ status: number; text: string }> => {
      const res = await request(`https://127.0.0.1:${port}/readyz`, { dispatcher });
      return { status: res.statusCode, text: await res.body.text() };
    };
    try {
      const early = await waitFor(async () => {
        const r = await readyz();
        return r.text.includes('list failing') && r;
      });
      expect(early.status).toBe(503);
      expect(early.text).toMatch(/^not ready\npolicies not loaded yet \(the policy and certificate endpoints answer 503\)\n/);
      expect(early.text).toContain('egresspolicies: not listed yet (list failing: HTTP 503');
      await cp.synced;
      expect(await readyz()).toEqual({ status: 200, text: 'ready\n' });
      await server.close();
      expect((await readyz().catch(() => ({ status: 0, text: '' }))).status).not.toBe(200); // draining: not ready
    } finally {
      cp.stop();
      server.server.closeAllConnections();
      await server.close().catch(() => undefined);
      await dispatcher.close();
      await api.close();
    }
  });
});

describe('API server unreachable, then the control plane too, under a proxy', () => {
  let lcp: LocalControlPlane;
  let dispatcher: Agent;
  let stateDir: string;

  beforeAll(async () => {
    lcp = await startLocalControlPlane({ defaults: { ...defaultPolicySpec(), providers: ['openai'] } });
    lcp.enableNamespace('team-a');
    await waitFor(() => lcp.cp.store.get('team-a'));
    dispatcher = new Agent({ connect: { ca: lcp.cp.caPem } });
    stateDir = await mkdtemp(join(tmpdir(), 'aigress-cp-faults-'));
  });
  afterAll(async () => {
    await dispatcher.close();
    await lcp.close();
    await rm(stateDir, { recursive: true, force: true });
  });

  const readyz = async (): Promise<{ status: number; text: string }> => {
    const res = await request(`${lcp.url}/readyz`, { dispatcher });
    return { status: res.statusCode, text: await res.body.text() };
  };
  const getPolicy = async (token: string): Promise<{ status: number; etag?: string }> => {
    const res = await request(`${lcp.url}/v1/policy`, { dispatcher, headers: { authorization: `Bearer ${token}` } });
    await res.body.text();
    return { status: res.statusCode, etag: res.headers.etag as string | undefined };
  };
  const issue = async (token: string): Promise<number> => {
    const { csrPem } = await createCsr(certificateNames(['openai']));
    const res = await request(`${lcp.url}/v1/certificates`, {
      dispatcher,
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ csr: csrPem }),
    });
    await res.body.text();
    return res.statusCode;
  };

  it('serves the last good policy and certificates, says degraded (not unready), and the proxy keeps both when the control plane goes too', async () => {
    const tokenFile = await lcp.tokenFile('team-a', 'app');
    const token = (await readFile(tokenFile, 'utf8')).trim();
    const registry = new Registry();
    const { log } = captureLogger();
    const proxy = clusterSources({ controlPlane: new URL(lcp.url), tokenFile, log, caPem: lcp.cp.caPem, stateDir, registry, longPollSeconds: 2, backoffBaseMs: 100, backoffMaxMs: 300 });
    try {
      const good = await proxy.policy.ready();
      await proxy.certificates.ready();
      const context = proxy.certificates.contextFor('api.openai.com');
      expect(context).not.toBeInstanceOf(Promise);
      const served = await getPolicy(token);
      expect(served.status).toBe(200);
      expect(await readyz()).toEqual({ status: 200, text: 'ready\n' });

      // 1. The API server goes away.
      await lcp.api.goAway();
      await waitFor(() => lcp.cp.readiness().notes.some((n) => n.startsWith('degraded: egresspolicies:')));
      const rz = await readyz();
      expect(rz.status).toBe(200);
      expect(rz.text).toMatch(/^ready\ndegraded: namespaces: (watch|list) failing: .*; serving the last good state\n/);
      // A proxy it knows (its token reviewed a moment ago) gets the last good policy and a certificate.
      expect(await getPolicy(token)).toEqual({ status: 200, etag: served.etag });
      expect(await issue(token)).toBe(201);
      // A token it has never seen cannot be reviewed: 503 with a retry-after, not a 500 and not a 401.
      const unknown = await request(`${lcp.url}/v1/policy`, { dispatcher, headers: { authorization: 'Bearer never-seen' } });
      expect([unknown.statusCode, unknown.headers['retry-after']]).toEqual([503, '5']);
      await unknown.body.text();
      expect(proxy.policy.current()).toEqual(good);

      // 2. The control plane goes away too: the proxy keeps its policy and certificate and counts the failures.
      lcp.server.server.closeAllConnections();
      await lcp.server.close();
      const metric = async (): Promise<number> => ((await registry.getMetricsAsJSON()).find((m) => m.name === 'aigress_proxy_policy_fetch_failures_total')?.values ?? []).reduce((a, v) => a + v.value, 0);
      await waitFor(async () => (await metric()) >= 3);
      expect(proxy.policy.current()).toEqual(good);
      expect(proxy.certificates.contextFor('api.openai.com')).toBe(context);

      // 3. Both come back: the informers catch up, readiness is clean, and a policy edit reaches the proxy.
      await lcp.api.comeBack();
      await lcp.server.listen(lcp.port, '127.0.0.1');
      await waitFor(() => lcp.cp.readiness().notes.length === 0, 45_000);
      expect(await readyz()).toEqual({ status: 200, text: 'ready\n' });
      const seen: EgressPolicy[] = [];
      proxy.policy.onChange((p) => seen.push(p));
      lcp.api.put(EP, 'egresspolicies', { apiVersion: EP, kind: 'EgressPolicy', metadata: { name: 'team-a', namespace: 'team-a' }, spec: { unmatchedEgress: 'deny' } });
      await waitFor(() => seen.length > 0);
      expect(proxy.policy.current().spec.unmatchedEgress).toBe('deny');
    } finally {
      if (!lcp.server.server.listening) await lcp.server.listen(lcp.port, '127.0.0.1');
      proxy.certificates.close();
      proxy.policy.close();
    }
  });
});
