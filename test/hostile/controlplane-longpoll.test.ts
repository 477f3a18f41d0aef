import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { Socket } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { certificateNames } from '../../shared/certificate-names.js';
import { createCsr } from '../../shared/leaf.js';
import { defaultPolicySpec } from '../../shared/policy/validate.js';
import { CP_NAMESPACE, startLocalControlPlane, type LocalControlPlane } from '../support/control-plane.js';
import { openFds } from '../support/resources.js';

// A thousand proxies long-polling at once, as a large cluster keeps them all the time: GET /v1/policy and
// GET /v1/credentials each held open by 1,000 connections, ending every way a poll ends (a change wakes them,
// the wait runs out, the proxy hangs up). Memory and descriptors must be bounded while they wait and come back
// after, and no poll may leave a timer, an abort listener, a socket listener or a waiter behind (each proxy
// polls again at once, forever: any per-poll leftover grows without bound). Then a token flood on the issuer:
// refused before it reaches the API server, while honest proxies from other addresses are served meanwhile.

const EP = 'aigress.io/v1alpha1';
const N = 1000;

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const memory = async (): Promise<{ heap: number; rss: number }> => {
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 50));
  }
  const m = process.memoryUsage();
  return { heap: m.heapUsed + m.external, rss: m.rss };
};
const mb = (bytes: number): string => (bytes / 1e6).toFixed(1);
const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
const waitFor = async <T>(fn: () => T | undefined | false, ms = 20_000): Promise<T> => {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 25));
  }
};

describe(`${N} concurrent long polls`, () => {
  let lcp: LocalControlPlane;
  let token: string;
  // Weakly: the test must not be what keeps closed connections in memory.
  const serverSockets = new Set<WeakRef<Socket>>();
  const seen = new WeakSet<Socket>();

  beforeAll(async () => {
    lcp = await startLocalControlPlane({ defaults: { ...defaultPolicySpec(), providers: ['openai'] }, rateLimit: { burst: 5, perSecond: 1 } });
    lcp.enableNamespace('team-a');
    lcp.api.put('v1', 'secrets', { metadata: { name: 'team-a-openai', namespace: CP_NAMESPACE, annotations: { 'aigress.io/credential-namespaces': 'team-a' } }, stringData: { apiKey: 'sk-managed-1' } });
    await waitFor(() => lcp.cp.store.get('team-a'));
    token = (await lcp.tokenFile('team-a', 'app')).split('/').pop()!;
    lcp.server.server.on('request', (req: { socket: Socket }) => {
      if (seen.has(req.socket)) return;
      seen.add(req.socket);
      serverSockets.add(new WeakRef(req.socket));
    });
  });
  afterAll(() => lcp.close());

  const poll = async (dispatcher: Agent, path: string, etag: string | undefined, wait: string): Promise<{ status: number; etag?: string }> => {
    try {
      const res = await request(`${lcp.url}${path}${path.includes('?') ? '&' : '?'}wait=${wait}`, {
        dispatcher,
        headers: { authorization: `Bearer ${token}`, ...(etag && { 'if-none-match': etag }) },
      });
      await res.body.text();
      return { status: res.statusCode, etag: res.headers.etag as string | undefined };
    } catch {
      return { status: 0 }; // the client hung up (round 3)
    }
  };
  const closeListeners = (): number => {
    let max = 0;
    for (const ref of serverSockets) {
      const s = ref.deref();
      if (!s || s.destroyed) serverSockets.delete(ref);
      else max = Math.max(max, s.listenerCount('close'));
    }
    return max;
  };

  /**
   * Opens N polls 100 at a time, each batch once the previous one is waiting: a thousand TLS handshakes at the
   * same instant on a loaded 2-core machine outlast the server's 10 s handshake timeout, which proxies starting
   * over minutes never meet.
   */
  async function ramp<T>(one: () => Promise<T>, waiting: () => number): Promise<Array<Promise<T>>> {
    const all: Array<Promise<T>> = [];
    while (all.length < N) {
      for (let i = 0; i < 100 && all.length < N; i++) all.push(one());
      const want = all.length;
      await waitFor(() => waiting() >= want, 60_000);
    }
    return all;
  }

  /** Three rounds on one endpoint: woken by a change, timed out, abandoned by the proxies. */
  async function rounds(path: string, change: () => void, waiting: () => number): Promise<string> {
    const dispatcher = new Agent({ connect: { ca: lcp.cp.caPem }, connections: N + 10 });
    const first = await poll(dispatcher, path, undefined, '0s');
    expect(first.status).toBe(200);
    const fds0 = openFds();
    const timers0 = timers();
    const mem0 = await memory();

    // 1. A change wakes all of them.
    const woken = await ramp((): Promise<{ status: number; etag?: string }> => poll(dispatcher, path, first.etag, '50s'), waiting);
    const fdsWaiting = openFds();
    const memWaiting = await memory();
    change();
    const r1 = await Promise.all(woken);
    expect(r1.filter((r) => r.status !== 200)).toEqual([]);
    const etag = r1[0]!.etag!;
    expect(etag).not.toBe(first.etag);
    expect(waiting()).toBe(0);
    const listenersAfter1 = closeListeners();

    // 2. The wait runs out: 304, on the same kept-alive connections.
    // Three times over, on the same kept-alive connections: node keeps three 'close' listeners of its own on
    // each; a poll that left one behind would add one per pass.
    let listeners1 = 0;
    for (let pass = 1; pass <= 3; pass++) {
      const r2 = await Promise.all(Array.from({ length: N }, () => poll(dispatcher, path, etag, '1s')));
      expect(r2.filter((r) => r.status !== 304)).toEqual([]);
      expect(waiting()).toBe(0);
      if (pass === 1) listeners1 = closeListeners();
    }
    expect(closeListeners()).toBeLessThanOrEqual(Math.max(listeners1, listenersAfter1));
    expect(closeListeners()).toBeLessThanOrEqual(4);
    await dispatcher.close();

    // 3. The proxies hang up mid-wait: the server stops waiting for them at once, not at the end of the wait.
    const leaving = new Agent({ connect: { ca: lcp.cp.caPem }, connections: N + 10 });
    const r3 = await ramp(() => poll(leaving, path, etag, '50s'), waiting);
    await leaving.destroy();
    await Promise.all(r3);
    await waitFor(() => waiting() === 0, 10_000);

    await waitFor(() => openFds() <= fds0 + 10, 10_000);
    await waitFor(() => timers() <= timers0 + 2, 5_000);
    const mem1 = await memory();
    expect(mem1.heap - mem0.heap).toBeLessThan(8e6);
    return (
      `${path}: ${N} waiting → fds ${fds0} → ${fdsWaiting} (both ends) → ${openFds()} after; heap+external ${mb(mem0.heap)} → ${mb(memWaiting.heap)} MB waiting ` +
      `(${Math.round((memWaiting.heap - mem0.heap) / N / 100) / 10} KB a poll, both ends) → ${mb(mem1.heap)} MB after; RSS ${mb(mem0.rss)} → ${mb(memWaiting.rss)} → ${mb(mem1.rss)} MB; ` +
      `timers ${timers0} → ${timers()}; max 'close' listeners on a kept-alive connection ${listenersAfter1}`
    );
  }

  it('GET /v1/policy: bounded while waiting, nothing left behind after a change, a timeout or the proxies leaving', async () => {
    let n = 0;
    const report = await rounds(
      '/v1/policy',
      () => lcp.api.put(EP, 'egresspolicies', { apiVersion: EP, kind: 'EgressPolicy', metadata: { name: 'p', namespace: 'team-a' }, spec: { unmatchedEgress: n++ % 2 ? 'deny' : 'passthrough' } }),
      () => lcp.cp.store.waiting(),
    );
    console.log(`long polls: ${report}`);
  });

  it('GET /v1/credentials: the same, woken by a Secret edit', async () => {
    lcp.api.put(EP, 'egresspolicies', {
      apiVersion: EP,
      kind: 'EgressPolicy',
      metadata: { name: 'p', namespace: 'team-a' },
      spec: { credentials: [{ provider: 'openai', secretRef: { name: 'team-a-openai', key: 'apiKey' } }] },
    });
    await waitFor(() => {
      const e = lcp.cp.store.get('team-a');
      return e?.kind === 'policy' && e.policy.spec.credentials.length === 1;
    });
    // Each credentials poll waits on the Secrets and on the namespace's policy at once.
    const report = await rounds(
      '/v1/credentials?provider=openai',
      () => lcp.api.put('v1', 'secrets', { metadata: { name: 'team-a-openai', namespace: CP_NAMESPACE, annotations: { 'aigress.io/credential-namespaces': 'team-a' } }, stringData: { apiKey: 'sk-managed-2' } }),
      () => lcp.cp.store.waiting(),
    );
    console.log(`long polls: ${report}`);
  });

  it('a token flood on the issuer is refused before the API server while honest proxies from other addresses are served', async () => {
    const reviews = (): number => lcp.api.requests.filter((r) => r.path === '/apis/authentication.k8s.io/v1/tokenreviews').length;
    const reviews0 = reviews();
    const { csrPem } = await createCsr(certificateNames(['openai']));
    const body = JSON.stringify({ csr: csrPem });
    // undici ignores connect.localAddress; node's agent passes it to the socket: one agent per pod address.
    const from = (address: string): HttpsAgent => new HttpsAgent({ keepAlive: true, maxSockets: 16, localAddress: address, ca: lcp.cp.caPem, servername: 'localhost' });
    const call = (agent: HttpsAgent, method: string, path: string, bearer: string): Promise<number> =>
      new Promise((resolve) => {
        const req = httpsRequest(
          { host: '127.0.0.1', port: lcp.port, path, method, agent, headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' } },
          (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          },
        );
        req.on('error', () => resolve(0));
        req.end(method === 'POST' ? body : undefined);
      });
    const issue = (agent: HttpsAgent, bearer: string): Promise<number> => call(agent, 'POST', '/v1/certificates', bearer);
    // The flood: 2 pods sending 1,000 made-up tokens each, and one pod with a valid token asking for
    // certificates in a loop (the issuer's per-ServiceAccount limit: burst 5 here).
    const attackers = [from('127.0.0.2'), from('127.0.0.3')];
    const greedyToken = (await lcp.tokenFile('team-a', 'greedy')).split('/').pop()!;
    const greedy = from('127.0.0.4');
    let flooding = true;
    const flood = (async () => {
      const statuses = new Map<number, number>();
      const count = (s: number): void => void statuses.set(s, (statuses.get(s) ?? 0) + 1);
      const work = attackers.flatMap((a, i) => Array.from({ length: 8 }, async (_, w) => {
        for (let k = 0; k < 1000 / 8; k++) count(await issue(a, `garbage-${i}-${w}-${k}`));
      }));
      const loop = Array.from({ length: 4 }, async () => {
        while (flooding) count(await issue(greedy, greedyToken));
      });
      await Promise.all(work);
      flooding = false;
      await Promise.all(loop);
      return statuses;
    })();
    // Meanwhile 20 honest proxies, each its own pod (address) and ServiceAccount, new to the control plane.
    const honest = await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const t = (await lcp.tokenFile('team-a', `honest-${i}`)).split('/').pop()!;
        const d = from(`127.0.1.${i + 1}`);
        try {
          const cert = await issue(d, t);
          return `${cert}/${await call(d, 'GET', '/v1/policy', t)}`;
        } finally {
          d.destroy();
        }
      }),
    );
    const statuses = await flood;
    for (const a of [...attackers, greedy]) a.destroy();
    const flooded = reviews() - reviews0;
    console.log(`token flood: ${[...statuses].map(([s, n]) => `${n}× ${s}`).join(', ')}; honest: ${honest.filter((h) => h === '201/200').length}/20 served; TokenReviews ${flooded}`);
    expect(honest).toEqual(Array.from({ length: 20 }, () => '201/200'));
    expect(statuses.get(429)).toBeGreaterThan(1900);
    expect(statuses.get(500) ?? 0).toBe(0);
    // 10 per attacking address (the per-source burst, plus what refilled meanwhile), 2 for the greedy and
    // honest tokens: nowhere near one per garbage token.
    expect(flooded).toBeLessThan(2 * 10 + 2 + 20 + 2 * 30);
  });
});
