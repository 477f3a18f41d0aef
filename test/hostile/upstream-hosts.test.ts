import type { TLSSocket } from 'node:tls';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_POOLS, Upstreams } from '../../sidecar/proxy/upstream.js';
import { fdsSettle, openFds, rssMb } from '../support/resources.js';
import { callTls, createTestPki, fakeUpstream, startTestProxy, type TestPki } from '../unit/proxy/support.js';

// The upstream side of host names an app controls: one normalised name (lower case, no trailing dot) for the
// provider's Host, its TLS server name and the pool, and a pool map that stays bounded however many distinct
// hosts an app names.

let pki: TestPki;
beforeAll(async () => {
  pki = await createTestPki();
});

describe('host normalisation', () => {
  it('API.OpenAI.COM, api.openai.com. and Api.openai.com reach the provider as api.openai.com over one TLS connection', async () => {
    const OPENAI = 'api.openai.com';
    const hosts: string[] = [];
    const servernames: string[] = [];
    const up = await fakeUpstream(pki, OPENAI, (req, res) => {
      hosts.push(req.headers.host ?? '');
      req.resume();
      req.on('end', () => res.end('{}'));
    });
    up.server.on('secureConnection', (s: TLSSocket) => servernames.push(String(s.servername)));
    const proxy = await startTestProxy(pki, { resolve: { [OPENAI]: { host: '127.0.0.1', port: up.port } } });
    try {
      await proxy.handle.ready;
      const written = ['API.OpenAI.COM', 'api.openai.com.', 'Api.openai.com', 'api.openai.com'];
      for (let i = 0; i < 12; i++) {
        const r = await callTls(proxy.handle.capturePort, OPENAI, pki.caPem, { method: 'GET', path: '/v1/models', headers: { host: written[i % written.length]! } });
        expect(r.status).toBe(200);
      }
      expect(new Set(hosts)).toEqual(new Set([OPENAI]));
      expect(servernames).toEqual([OPENAI]);
    } finally {
      await proxy.handle.close();
      await up.close();
    }
  });
});

/** Four times the bound; docs/reliability.md has the memory figure for 5,000 (pool-memory measurement). */
const HOSTS = 1_000;

describe('upstream pools', () => {
  const AZURE = '*.openai.azure.com';
  let up: Awaited<ReturnType<typeof fakeUpstream>>;
  let resolve: Record<string, { host: string; port: number }>;
  beforeAll(async () => {
    up = await fakeUpstream(pki, AZURE, (req, res) => {
      req.resume();
      req.on('end', () => res.end('{}'));
    });
    // Every host dials the one fake provider (its certificate is the wildcard).
    resolve = new Proxy({}, { get: () => ({ host: '127.0.0.1', port: up.port }) });
  });
  afterAll(() => up.close());

  const hit = async (u: Upstreams, host: string): Promise<void> => {
    const dispatcher = await u.pool(host);
    const r = await request(`https://${host}/openai/deployments/d/chat/completions`, { method: 'POST', body: '{}', dispatcher });
    await r.body.dump();
    expect(r.statusCode).toBe(200);
  };

  it(`${HOSTS} distinct hosts, one request each: at most ${MAX_POOLS} pools, the evicted ones' connections closed`, async () => {
    const u = new Upstreams({ timeoutMs: 10_000, resolve, extraCa: [pki.upstreamRootPem] });
    await u.load();
    try {
      await hit(u, 'warm.openai.azure.com');
      const fds0 = openFds();
      const rss0 = rssMb();
      for (let i = 0; i < HOSTS; i += 50) {
        await Promise.all(Array.from({ length: 50 }, (_, j) => hit(u, `r${i + j}.openai.azure.com`)));
        expect(u.size).toBeLessThanOrEqual(MAX_POOLS);
      }
      // Kept pools hold one keep-alive connection each (two fds in this process: client and fake server side).
      const after = await fdsSettle(fds0 + 2 * MAX_POOLS + 20);
      expect(after - fds0).toBeLessThanOrEqual(2 * MAX_POOLS + 20);
      console.log(`upstream pools: ${HOSTS} hosts → ${u.size} pools, fds +${after - fds0}, RSS ${rss0} → ${rssMb()} MB`);
    } finally {
      await u.close();
    }
  }, 120_000);

  it('a pool idle past the eviction time is closed; a busy one is kept', async () => {
    const u = new Upstreams({ timeoutMs: 10_000, resolve, extraCa: [pki.upstreamRootPem], idleEvictMs: 60_000 });
    await u.load();
    try {
      await hit(u, 'idle.openai.azure.com');
      const busyPool = await u.pool('busy.openai.azure.com');
      // A request held open at the provider: the fake answers only once the body ends.
      const held = request('https://busy.openai.azure.com/x', { dispatcher: busyPool, method: 'POST', body: Readable.from((async function* () { yield '{'; await new Promise((r) => setTimeout(r, 300)); yield '}'; })()) });
      u.sweep(Date.now()); // nothing is idle yet
      expect(u.size).toBe(2);
      u.sweep(Date.now() + 60_000);
      expect(u.size).toBe(1); // idle went, busy stayed
      const r = await held;
      await r.body.dump();
      expect(r.statusCode).toBe(200);
    } finally {
      await u.close();
    }
  });
});
