import { renameSync, writeFileSync } from 'node:fs';
import { Pool, buildConnector } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildPipeline } from '../../sidecar/pipeline/index.js';
import { createTestPki, eventually, fakeUpstream, startTestProxy, type TestPki, type TestProxy } from '../unit/proxy/support.js';
import { clientLoad } from './support.js';

// The policy file is rewritten again and again (in place, and by rename as a ConfigMap update does) while a
// client keeps sending. No request may fail because of a reload: every answer is the provider's 200 or the
// policy's 403, as one of the policies in force allowed; a model both policies allow always passes, one both
// deny never reaches the provider, and each new policy takes effect.

const OPENAI = 'api.openai.com';
const policy = (name: string, allow: string[]): string =>
  ['apiVersion: aigress.io/v1alpha1', 'kind: EgressPolicy', `metadata: { name: ${name} }`, 'spec:', '  providers: [openai]', `  models: { allow: [${allow.map((m) => JSON.stringify(m)).join(', ')}] }`, ''].join('\n');
/** Two policies: gpt-4o-mini is allowed by both, gpt-4o only by A, gpt-4.1 only by B, o3 by neither. */
const A = policy('a', ['gpt-4o-mini', 'gpt-4o']);
const B = policy('b', ['gpt-4o-mini', 'gpt-4.1']);
const MODELS = ['gpt-4o-mini', 'gpt-4o', 'gpt-4.1', 'o3'] as const;
type Model = (typeof MODELS)[number];

let pki: TestPki;
let proxy: TestProxy;
let pool: Pool;
const reached = new Map<string, number>();
let closeUpstream: () => Promise<void>;
/** Every 200 the app got, load and probes alike. */
let answered200 = 0;

beforeAll(async () => {
  pki = await createTestPki();
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
  proxy = await startTestProxy(pki, { policyText: A, buildPipeline, resolve: { [OPENAI]: { host: '127.0.0.1', port: up.port } } });
  await proxy.handle.ready;
  const connector = buildConnector({ ca: pki.caPem });
  pool = new Pool(`https://${OPENAI}`, {
    connections: 8,
    connect: (o, cb) => connector({ ...o, hostname: '127.0.0.1', port: String(proxy.handle.capturePort), servername: OPENAI }, cb),
  });
});
afterAll(async () => {
  await pool.close();
  await proxy.handle.close();
  await closeUpstream();
});

async function ask(model: Model): Promise<{ status: number; body: string }> {
  const r = await pool.request({ method: 'POST', path: '/v1/chat/completions', headers: { host: OPENAI, 'content-type': 'application/json', authorization: 'Bearer sk-test' }, body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }] }) });
  const body = await r.body.text();
  if (r.statusCode === 200) answered200++;
  return { status: r.statusCode, body };
}

/** Writes the policy file: in place (truncate and write, so a reader may see it half written) or by rename. */
function rewrite(text: string, how: 'in-place' | 'rename'): void {
  if (how === 'in-place') writeFileSync(proxy.policyFile, text);
  else {
    writeFileSync(`${proxy.policyFile}.tmp`, text);
    renameSync(`${proxy.policyFile}.tmp`, proxy.policyFile);
  }
}

describe('policy reloads under load', () => {
  it('no request fails while the policy file is rewritten 12 times; each policy takes effect; denied requests never reach the provider', async () => {
    const load = clientLoad(MODELS, 8, ask);
    const { answers, errors } = load;

    const took: boolean[] = [];
    for (let round = 0; round < 12; round++) {
      const next = round % 2 === 0 ? B : A;
      rewrite(next, round % 4 < 2 ? 'in-place' : 'rename');
      // the new policy takes effect: the model only it allows passes, the one only the old allowed is refused
      const [passes, refused]: [Model, Model] = next === B ? ['gpt-4.1', 'gpt-4o'] : ['gpt-4o', 'gpt-4.1'];
      took.push(await eventually(async () => (await ask(passes)).status === 200 && (await ask(refused)).status === 403, 10_000));
    }
    await load.stop();

    expect(took).toEqual(Array(12).fill(true));
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
