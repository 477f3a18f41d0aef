// Cluster mode: credentials are Secrets in the control plane's namespace, served at GET /v1/credentials over
// the policy's authenticated channel to the namespaces whose effective policy names them (and whose Secret
// allows them), long polled; the proxy holds them in memory and puts them on calls. Against the fake API server.
import { generateKeyPairSync } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCA, issueLeaf, loadCA } from '../../../shared/pki.js';
import { defaultPolicySpec } from '../../../shared/policy/validate.js';
import { buildPipeline } from '../../../sidecar/pipeline/index.js';
import { startProxy, type ProxyHandle } from '../../../sidecar/proxy/proxy.js';
import { clusterSources } from '../../../sidecar/proxy/sources/cluster.js';
import { CP_NAMESPACE, startLocalControlPlane, type LocalControlPlane } from '../../support/control-plane.js';
import { callTls, captureLogger, eventually } from '../proxy/support.js';

const EP = 'aigress.io/v1alpha1';
const OPENAI_A = 'sk-team-a-MANAGED-aaaa1111';
const OPENAI_A2 = 'sk-team-a-ROTATED-aaaa2222';
const ANTHROPIC_B = 'sk-ant-team-b-MANAGED-bbbb';
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const SA_PEM = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const SA_KEY = JSON.stringify({ type: 'service_account', client_email: 'vx@p.iam.gserviceaccount.com', private_key: SA_PEM, private_key_id: 'k1' });

const secret = (name: string, data: Record<string, string>, allow?: string) => ({
  metadata: { name, namespace: CP_NAMESPACE, ...(allow !== undefined && { annotations: { 'aigress.io/credential-namespaces': allow } }) },
  stringData: data,
});
const egressPolicy = (namespace: string, credentials: unknown[], providers = ['openai', 'anthropic', 'vertex-ai']) => ({
  apiVersion: EP,
  kind: 'EgressPolicy',
  metadata: { name: 'p', namespace },
  spec: { providers, credentials },
});

interface Answer {
  status: number;
  etag?: string;
  text: string;
  json?: { credentials?: { provider: string; material?: { kind: string; value?: string; token?: string }; error?: string }[]; error?: { reason: string } };
}

describe('GET /v1/credentials and a proxy in cluster mode', () => {
  let lcp: LocalControlPlane;
  let dispatcher: Agent;
  const tokens: Record<string, string> = {};

  async function get(token: string | undefined, query: string, etag?: string): Promise<Answer> {
    const res = await request(`${lcp.url}/v1/credentials${query}`, {
      dispatcher,
      headers: { ...(token && { authorization: `Bearer ${token}` }), ...(etag && { 'if-none-match': etag }) },
    });
    const text = await res.body.text();
    return { status: res.statusCode, etag: res.headers.etag as string | undefined, text, json: text ? (JSON.parse(text) as Answer['json']) : undefined };
  }

  beforeAll(async () => {
    lcp = await startLocalControlPlane({ defaults: { ...defaultPolicySpec(), providers: ['openai', 'anthropic', 'vertex-ai'] } });
    lcp.enableNamespace('team-a');
    lcp.enableNamespace('team-b');
    lcp.api.put('v1', 'namespaces', { metadata: { name: 'team-c' } }); // not opted in
    lcp.api.put('v1', 'secrets', secret('team-a-openai', { apiKey: `${OPENAI_A}\n` }, 'team-a'));
    lcp.api.put('v1', 'secrets', secret('team-b-anthropic', { apiKey: ANTHROPIC_B }, 'team-b'));
    lcp.api.put('v1', 'secrets', secret('platform-vertex', { 'key.json': SA_KEY }, '*'));
    lcp.api.put(EP, 'egresspolicies', egressPolicy('team-a', [
      { provider: 'openai', secretRef: { name: 'team-a-openai', key: 'apiKey' } },
      { provider: 'vertex-ai', secretRef: { name: 'platform-vertex', key: 'key.json' } },
    ]));
    lcp.api.put(EP, 'egresspolicies', egressPolicy('team-b', [{ provider: 'anthropic', secretRef: { name: 'team-b-anthropic', key: 'apiKey' } }]));
    lcp.api.put(EP, 'egresspolicies', egressPolicy('team-c', [{ provider: 'openai', secretRef: { name: 'team-a-openai', key: 'apiKey' } }]));
    dispatcher = new Agent({ connect: { ca: lcp.cp.caPem } });
    for (const ns of ['team-a', 'team-b', 'team-c']) {
      const file = await lcp.tokenFile(ns, 'app');
      tokens[ns] = file.split('/').pop()!;
    }
    // the policies have been seen
    await eventually(async () => (await get(tokens['team-a'], '?provider=openai')).status === 200);
  }, 30_000);
  afterAll(async () => {
    await dispatcher?.close();
    await lcp?.close().catch(() => undefined); // its server may be closed already (the last test)
  });

  it('serves a namespace the credentials its policy names; vertex-ai as a token minted by the control plane, never the key', async () => {
    const r = await get(tokens['team-a'], '?provider=openai&provider=vertex-ai');
    expect(r.status).toBe(200);
    const byProvider = Object.fromEntries(r.json!.credentials!.map((c) => [c.provider, c]));
    expect(byProvider.openai!.material).toEqual({ kind: 'api-key', value: OPENAI_A });
    expect(byProvider['vertex-ai']!.material).toMatchObject({ kind: 'bearer', token: expect.stringMatching(/^eyJ/) });
    expect(r.text).not.toContain('PRIVATE KEY');
    expect(r.text).not.toContain(SA_PEM.split('\n')[1]!);
  });

  it('refuses (403) a provider its policy names no credential for: team-a cannot get team-b\'s key', async () => {
    const r = await get(tokens['team-a'], '?provider=anthropic');
    expect(r.status).toBe(403);
    expect(r.json!.error!.reason).toBe('CredentialNotPermitted');
    expect(r.text).not.toContain(ANTHROPIC_B);
  });

  it('gives nothing when team-a names team-b\'s Secret in its own policy: the Secret allows team-b only', async () => {
    lcp.api.put(EP, 'egresspolicies', egressPolicy('team-a', [
      { provider: 'openai', secretRef: { name: 'team-a-openai', key: 'apiKey' } },
      { provider: 'anthropic', secretRef: { name: 'team-b-anthropic', key: 'apiKey' } },
    ]));
    const r = await eventually(async () => {
      const x = await get(tokens['team-a'], '?provider=anthropic');
      return x.status === 200 ? x : undefined;
    });
    expect(r!.json!.credentials![0]).toMatchObject({ provider: 'anthropic', error: expect.stringContaining('does not allow namespace team-a') });
    expect(r!.json!.credentials![0]!.material).toBeUndefined();
    expect(r!.text).not.toContain(ANTHROPIC_B);
    // and team-b, whose Secret it is, gets it
    expect((await get(tokens['team-b'], '?provider=anthropic')).json!.credentials![0]!.material).toEqual({ kind: 'api-key', value: ANTHROPIC_B });
  });

  it('never serves a Secret that does not opt in (the CA\'s), whatever a policy names', async () => {
    lcp.api.put(EP, 'egresspolicies', egressPolicy('team-b', [{ provider: 'anthropic', secretRef: { name: 'aigress-ca', key: 'tls.key' } }]));
    const r = await eventually(async () => {
      const x = await get(tokens['team-b'], '?provider=anthropic');
      return x.json?.credentials?.[0]?.error ? x : undefined;
    });
    expect(r!.json!.credentials![0]!.error).toContain('no credential Secret aigress-ca');
    const caKey = Buffer.from((lcp.api.get('v1', 'secrets', CP_NAMESPACE, 'aigress-ca')!.data as Record<string, string>)['tls.key']!, 'base64').toString();
    expect(r!.text).not.toContain(caKey.split('\n')[1]!);
    lcp.api.put(EP, 'egresspolicies', egressPolicy('team-b', [{ provider: 'anthropic', secretRef: { name: 'team-b-anthropic', key: 'apiKey' } }]));
  });

  it('gives a namespace that is not opted in nothing (403), and no token nothing (401)', async () => {
    const c = await get(tokens['team-c'], '?provider=openai');
    expect(c.status).toBe(403);
    expect(c.json!.error!.reason).toBe('NamespaceNotEnabled');
    expect(c.text).not.toContain(OPENAI_A);
    const none = await get(undefined, '?provider=openai');
    expect(none.status).toBe(401);
    expect((await get('forged-token', '?provider=openai')).status).toBe(401);
  });

  describe('the proxy', () => {
    let provider: Server;
    let proxy: ProxyHandle;
    const seen: (string | undefined)[] = [];
    const proxyLog = captureLogger();
    let root: { certPem: string; keyPem: string };

    beforeAll(async () => {
      root = await createCA('fake provider root');
      const leaf = await issueLeaf(await loadCA(root.certPem, root.keyPem), { dnsNames: ['api.openai.com'] });
      provider = createServer({ cert: leaf.certPem, key: leaf.keyPem }, (req, res) => {
        seen.push(req.headers.authorization);
        req.resume();
        req.on('end', () => {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ id: 'x', object: 'chat.completion', model: 'gpt-4o', choices: [], usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } }));
        });
      });
      await new Promise<void>((r) => provider.listen(0, '127.0.0.1', r));
      const dir = await mkdtemp(join(tmpdir(), 'aigress-cred-cluster-'));
      const registry = new Registry();
      const tokenFile = await lcp.tokenFile('team-a', 'app');
      const sources = clusterSources({ controlPlane: new URL(lcp.url), tokenFile, log: proxyLog.logger, caPem: lcp.cp.caPem, stateDir: dir, registry });
      proxy = await startProxy({
        ...sources,
        registry,
        buildPipeline,
        credentials: { kind: 'control-plane', controlPlane: new URL(lcp.url), tokenFile, caPem: lcp.cp.caPem, longPollSeconds: 20 },
        capturePort: 0,
        adminPort: 0,
        listenAddresses: ['127.0.0.1'],
        adminAddress: '127.0.0.1',
        bundleDir: dir,
        logger: proxyLog.logger,
        resolve: { 'api.openai.com': { host: '127.0.0.1', port: (provider.address() as AddressInfo).port } },
        upstreamCa: root.certPem,
      });
      await proxy.ready;
    }, 30_000);
    afterAll(async () => {
      await proxy?.close();
      await new Promise<void>((r) => (provider.closeAllConnections(), provider.close(() => r())));
    });

    const call = () =>
      callTls(proxy.capturePort, 'api.openai.com', lcp.cp.caPem, {
        headers: { authorization: 'Bearer aigress-managed', 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] }),
      });

    it('puts the managed key on the call; the app sent a placeholder', async () => {
      const r = await call();
      expect(r.status).toBe(200);
      expect(seen.at(-1)).toBe(`Bearer ${OPENAI_A}`);
    });

    it('a Secret edit reaches the proxy within seconds, with no request failing (8 clients calling throughout)', async () => {
      let stop = false;
      const statuses: number[] = [];
      const clients = Array.from({ length: 8 }, async () => {
        while (!stop) statuses.push((await call()).status);
      });
      await new Promise((r) => setTimeout(r, 200));
      const before = seen.length;
      const t0 = performance.now();
      lcp.api.put('v1', 'secrets', secret('team-a-openai', { apiKey: OPENAI_A2 }, 'team-a'));
      let ms = -1;
      for (let i = 0; i < 500 && ms < 0; i++) {
        if (seen.slice(before).includes(`Bearer ${OPENAI_A2}`)) ms = Math.round(performance.now() - t0);
        else await new Promise((r) => setTimeout(r, 10));
      }
      const firstNew = seen.indexOf(`Bearer ${OPENAI_A2}`, before);
      await new Promise((r) => setTimeout(r, 300));
      stop = true;
      await Promise.all(clients);
      expect(ms).toBeGreaterThanOrEqual(0);
      expect(statuses.length).toBeGreaterThan(20);
      expect(statuses.filter((s) => s !== 200)).toEqual([]);
      expect(seen.every((a) => a === `Bearer ${OPENAI_A}` || a === `Bearer ${OPENAI_A2}`)).toBe(true);
      // after the change has arrived (allowing for the 8 requests already under way), only the new key is sent
      expect(seen.slice(firstNew + 8).every((a) => a === `Bearer ${OPENAI_A2}`)).toBe(true);
      console.log(`credential rotation: Secret edit → first request with the new key after ${ms} ms; ${statuses.length} requests by 8 clients, none failed`);
    });

    it('no log line of the proxy or the control plane holds a key, in clear or base64', () => {
      const text = `${proxyLog.raw.join('\n')}\n${lcp.logText()}`;
      expect(text).toContain('managed credentials updated from the control plane');
      for (const key of [OPENAI_A, OPENAI_A2, ANTHROPIC_B]) {
        for (const form of [key, Buffer.from(key).toString('base64'), Buffer.from(key).toString('base64url')]) expect(text).not.toContain(form);
      }
      expect(text).not.toContain(SA_PEM.split('\n')[1]!);
    });

    it('keeps the managed key when the control plane goes away', async () => {
      lcp.server.server.closeAllConnections();
      await lcp.server.close();
      const r = await call();
      expect(r.status).toBe(200);
      expect(seen.at(-1)).toBe(`Bearer ${OPENAI_A2}`);
    });
  });
});
