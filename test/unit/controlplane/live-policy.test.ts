import { mkdtemp, rm } from 'node:fs/promises';
import { Agent as HttpsAgent, createServer, request, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultPolicySpec } from '../../../shared/policy/validate.js';
import { createCA, issueLeaf, loadCA } from '../../../shared/pki.js';
import { clusterSources } from '../../../sidecar/proxy/sources/cluster.js';
import { startProxy, type ProxyHandle } from '../../../sidecar/proxy/proxy.js';
import { startLocalControlPlane, type LocalControlPlane } from '../../support/control-plane.js';

// The issue's acceptance test for live policy: a change applied while 200 requests per second pass through a
// proxy in cluster mode takes effect within 5 s, with zero failed requests. The proxy runs in-process (no
// network namespace needed: the app's connections go straight to its capture port, SNI and Host as an app
// would send them), the provider is a local HTTPS server with its own root.

const EP = 'aigress.io/v1alpha1';
const RATE = 200; // requests per second
const BATCH_MS = 50;

describe('a policy change under load', () => {
  let lcp: LocalControlPlane;
  let provider: Server;
  let proxy: ProxyHandle;
  let sources: ReturnType<typeof clusterSources>;
  let dir: string;
  let agent: HttpsAgent;

  beforeAll(async () => {
    lcp = await startLocalControlPlane({ defaults: { ...defaultPolicySpec(), providers: ['openai'] } });
    lcp.enableNamespace('team-a');
    const root = await createCA('fake provider root');
    const leaf = await issueLeaf(await loadCA(root.certPem, root.keyPem), { dnsNames: ['api.openai.com'] });
    provider = createServer({ cert: leaf.certPem, key: leaf.keyPem }, (req, res) => {
      req.resume();
      req.on('end', () => {
        const body = JSON.stringify({ id: 'x', object: 'chat.completion', model: 'gpt-4o', choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }], usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 } });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      });
    });
    await new Promise<void>((r) => provider.listen(0, '127.0.0.1', r));
    dir = await mkdtemp(join(tmpdir(), 'aigress-live-'));
    const registry = new Registry();
    const log = pino({ level: 'silent' });
    sources = clusterSources({ controlPlane: new URL(lcp.url), tokenFile: await lcp.tokenFile('team-a', 'app'), log, caPem: lcp.cp.caPem, stateDir: dir, registry });
    proxy = await startProxy({
      ...sources,
      registry,
      capturePort: 0,
      adminPort: 0,
      listenAddresses: ['127.0.0.1'],
      adminAddress: '127.0.0.1',
      bundleDir: dir,
      logger: log,
      resolve: { 'api.openai.com': { host: '127.0.0.1', port: (provider.address() as AddressInfo).port } },
      upstreamCa: root.certPem,
    });
    await proxy.ready;
    agent = new HttpsAgent({ keepAlive: true, maxSockets: 32, ca: lcp.cp.caPem });
  });
  afterAll(async () => {
    agent?.destroy();
    await proxy?.close();
    provider?.close();
    await lcp?.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** One chat completion as the app sends it: TLS for api.openai.com (trusting the aigress CA) to the capture port. */
  function call(): Promise<{ status: number; sentAt: number; error?: string }> {
    const sentAt = Date.now();
    const body = JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] });
    return new Promise((resolve) => {
      const req = request(
        {
          host: '127.0.0.1',
          port: proxy.capturePort,
          servername: 'api.openai.com',
          method: 'POST',
          path: '/v1/chat/completions',
          agent,
          headers: { host: 'api.openai.com', 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), authorization: 'Bearer sk-test' },
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode ?? 0, sentAt }));
          res.on('error', (e) => resolve({ status: 0, sentAt, error: e.message }));
        },
      );
      req.on('error', (e) => resolve({ status: 0, sentAt, error: e.message }));
      req.end(body);
    });
  }

  it(`takes effect within 5 s at ${RATE} req/s with zero failed requests; an invalid edit changes nothing`, async () => {
    const results: Array<Promise<{ status: number; sentAt: number; error?: string }>> = [];
    const perBatch = (RATE * BATCH_MS) / 1000;
    let appliedAt = 0;
    let invalidAt = 0;
    const start = Date.now();
    await new Promise<void>((done) => {
      const timer = setInterval(() => {
        const elapsed = Date.now() - start;
        for (let i = 0; i < perBatch; i++) results.push(call());
        if (appliedAt === 0 && elapsed >= 2000) {
          appliedAt = Date.now();
          lcp.api.put(EP, 'egresspolicies', {
            apiVersion: EP,
            kind: 'EgressPolicy',
            metadata: { name: 'team-a', namespace: 'team-a' },
            spec: { models: { deny: ['gpt-4o'] } },
          });
        }
        if (invalidAt === 0 && elapsed >= 5000) {
          // An invalid edit: rejected by the control plane, enforcement stays as it is.
          invalidAt = Date.now();
          lcp.api.put(EP, 'egresspolicies', {
            apiVersion: EP,
            kind: 'EgressPolicy',
            metadata: { name: 'team-a', namespace: 'team-a' },
            spec: { models: { deny: [] }, filters: [{ type: 'regex', pattern: '(unclosed' }] },
          });
        }
        if (elapsed >= 8000) {
          clearInterval(timer);
          done();
        }
      }, BATCH_MS);
    });
    const all = await Promise.all(results);
    const failed = all.filter((r) => r.status !== 200 && r.status !== 403);
    expect(failed.slice(0, 5)).toEqual([]);
    const firstDenied = all.filter((r) => r.status === 403).sort((a, b) => a.sentAt - b.sentAt)[0];
    expect(firstDenied).toBeDefined();
    const effectMs = firstDenied!.sentAt - appliedAt;
    // Once denied, every request sent a moment later is denied too (no flapping between old and new policy).
    const lateAllowed = all.filter((r) => r.status === 200 && r.sentAt > firstDenied!.sentAt + 100);
    expect(lateAllowed).toEqual([]);
    expect(all.filter((r) => r.sentAt < appliedAt && r.status === 200).length).toBeGreaterThan(RATE); // it was passing before
    expect(all.filter((r) => r.sentAt > invalidAt).length).toBeGreaterThan(RATE); // and the invalid edit changed nothing
    const cond = (lcp.api.get(EP, 'egresspolicies', 'team-a', 'team-a')!.status as { conditions: Array<{ status: string; reason: string }> }).conditions[0]!;
    expect([cond.status, cond.reason]).toEqual(['False', 'Invalid']);
    console.log(`live policy: ${all.length} requests in ${Date.now() - start} ms, ${failed.length} failed, change in effect ${effectMs} ms after it was applied`);
    expect(effectMs).toBeLessThan(5000); // the issue's bound
  });
});
