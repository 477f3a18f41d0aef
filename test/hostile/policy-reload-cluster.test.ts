import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { Pool, buildConnector } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EgressPolicySpec } from '../../shared/policy/types.js';
import { defaultPolicySpec } from '../../shared/policy/validate.js';
import { clusterSources } from '../../sidecar/proxy/sources/cluster.js';
import { startProxy, type ProxyHandle } from '../../sidecar/proxy/proxy.js';
import { startLocalControlPlane, type LocalControlPlane } from '../support/control-plane.js';
import { createTestPki, eventually, fakeUpstream } from '../unit/proxy/support.js';
import { clientLoad } from './support.js';

// policy-reload.test.ts for the cluster source: the namespace's EgressPolicy is edited in the (fake) API server
// once a second, alternately allowing one model and another, while clients keep sending through a proxy whose
// policy comes from the control plane's long poll. No request may fail because of a change: every answer is the
// provider's 200 or the policy's 403, as one of the two policies allowed; a model both allow always passes, one
// both deny never reaches the provider, and each new policy takes effect.

const EP = 'aigress.io/v1alpha1';
const NS = 'team-a';
const OPENAI = 'api.openai.com';
const ROUNDS = 12;
const spec = (allow: string[]): EgressPolicySpec => ({ ...defaultPolicySpec(), providers: ['openai'], models: { allow, deny: [] } });
/** gpt-4o-mini is allowed by both, gpt-4o only by A, gpt-4.1 only by B, o3 by neither. */
const A = spec(['gpt-4o-mini', 'gpt-4o']);
const B = spec(['gpt-4o-mini', 'gpt-4.1']);
const MODELS = ['gpt-4o-mini', 'gpt-4o', 'gpt-4.1', 'o3'] as const;
type Model = (typeof MODELS)[number];

let lcp: LocalControlPlane;
let proxy: ProxyHandle;
let sources: ReturnType<typeof clusterSources>;
let pool: Pool;
let dir: string;
let closeUpstream: () => Promise<void>;
const reached = new Map<string, number>();
/** Every 200 the app got, load and probes alike. */
let answered200 = 0;

const put = (s: EgressPolicySpec): void => {
  lcp.api.put(EP, 'egresspolicies', { apiVersion: EP, kind: 'EgressPolicy', metadata: { name: NS, namespace: NS }, spec: s });
};

beforeAll(async () => {
  lcp = await startLocalControlPlane({ defaults: { ...defaultPolicySpec(), providers: ['openai'] } });
  lcp.enableNamespace(NS);
  put(A);
  const pki = await createTestPki();
  const up = await fakeUpstream(pki, OPENAI, (req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const model = (JSON.parse(body) as { model: string }).model;
      reached.set(model, (reached.get(model) ?? 0) + 1);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ id: 'x', object: 'chat.completion', model, choices: [], usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } }));
    });
  });
  closeUpstream = up.close;
  dir = await mkdtemp(join(tmpdir(), 'aigress-reload-cluster-'));
  const registry = new Registry();
  const log = pino({ level: 'silent' });
  sources = clusterSources({ controlPlane: new URL(lcp.url), tokenFile: await lcp.tokenFile(NS, 'app'), log, caPem: lcp.cp.caPem, stateDir: dir, registry, backoffBaseMs: 100 });
  proxy = await startProxy({
    ...sources,
    registry,
    capturePort: 0,
    adminPort: 0,
    listenAddresses: ['127.0.0.1'],
    adminAddress: '127.0.0.1',
    bundleDir: dir,
    logger: log,
    resolve: { [OPENAI]: { host: '127.0.0.1', port: up.port } },
    upstreamCa: pki.upstreamRootPem,
  });
  await proxy.ready;
  const connector = buildConnector({ ca: lcp.cp.caPem });
  pool = new Pool(`https://${OPENAI}`, {
    connections: 8,
    connect: (o, cb) => connector({ ...o, hostname: '127.0.0.1', port: String(proxy.capturePort), servername: OPENAI }, cb),
  });
});
afterAll(async () => {
  await pool?.close();
  await proxy?.close();
  await closeUpstream?.();
  await lcp?.close();
  await rm(dir, { recursive: true, force: true });
});

async function ask(model: Model): Promise<{ status: number; body: string }> {
  const r = await pool.request({
    method: 'POST',
    path: '/v1/chat/completions',
    headers: { host: OPENAI, 'content-type': 'application/json', authorization: 'Bearer sk-test' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }] }),
  });
  const body = await r.body.text();
  if (r.statusCode === 200) answered200++;
  return { status: r.statusCode, body };
}

const takesEffect = async (passes: Model, refused: Model): Promise<boolean> => (await ask(passes)).status === 200 && (await ask(refused)).status === 403;

describe('cluster policy changes under load', () => {
  it(`no request fails while the EgressPolicy changes every second (${ROUNDS} times); each policy takes effect; denied requests never reach the provider`, async () => {
    // the starting policy is A, from the control plane
    expect(await eventually(() => takesEffect('gpt-4o', 'gpt-4.1'), 10_000)).toBe(true);
    const load = clientLoad(MODELS, 8, ask);
    const { answers, errors } = load;

    const took: boolean[] = [];
    const changes: string[] = [];
    sources.policy.onChange((p) => changes.push(JSON.stringify(p.spec.models)));
    for (let round = 0; round < ROUNDS; round++) {
      const t0 = Date.now();
      const next = round % 2 === 0 ? B : A;
      put(next);
      // the new policy takes effect: the model only it allows passes, the one only the old allowed is refused
      const [passes, refused]: [Model, Model] = next === B ? ['gpt-4.1', 'gpt-4o'] : ['gpt-4o', 'gpt-4.1'];
      took.push(await eventually(() => takesEffect(passes, refused), 10_000));
      const left = 1_000 - (Date.now() - t0);
      if (left > 0) await new Promise((r) => setTimeout(r, left));
    }
    await load.stop();

    expect(took).toEqual(Array(ROUNDS).fill(true));
    expect(changes.length).toBeGreaterThanOrEqual(ROUNDS); // through the long poll, not a restart
    expect(errors).toEqual([]);
    expect(answers.length).toBeGreaterThan(100);
    const by = (m: Model): number[] => [...new Set(answers.filter((a) => a.item === m).map((a) => a.status))].sort();
    expect(by('gpt-4o-mini')).toEqual([200]); // allowed by every policy: never refused, never failed
    expect(by('o3')).toEqual([403]); // allowed by none
    for (const m of ['gpt-4o', 'gpt-4.1'] as const) expect(by(m)).toEqual([200, 403]);
    for (const a of answers.filter((x) => x.status === 403)) expect(JSON.parse(a.body)).toMatchObject({ error: { type: expect.any(String) as string } });
    expect(reached.get('o3') ?? 0).toBe(0);
    // the provider saw exactly the requests the app got a 200 for: nothing refused was sent, nothing sent was lost
    expect([...reached.values()].reduce((a, b) => a + b, 0)).toBe(answered200);
  });
});
