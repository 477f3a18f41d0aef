// Standalone managed credentials end to end on loopback: `--credentials-dir` laid out as the kubelet mounts a
// Secret (`..data` symlink swapped on update), the real pipeline, a fake provider that records what it got.
// The app sends a placeholder; the provider receives the managed key; rotating the file changes the key of the
// next requests with none failing; no log line holds the key or its base64.
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DirCredentialSource } from '../../../sidecar/credentials/dir-source.js';
import { buildPipeline } from '../../../sidecar/pipeline/index.js';
import { createLogger } from '../../../shared/log.js';
import { callTls, captureLogger, createTestPki, eventually, fakeUpstream, startTestProxy, type TestPki, type TestProxy } from '../proxy/support.js';

const KEY1 = 'sk-proj-MANAGED-first-7f3a9c';
const KEY2 = 'sk-proj-MANAGED-second-1b2e4d';
const PLACEHOLDER = 'aigress-managed';

let pki: TestPki;
let credDir: string;
let generation = 0;

/** Writes a Secret volume as the kubelet does: a timestamped dir, `..data` pointing at it, keys linking through it. */
function writeSecret(name: string, data: Record<string, string>): void {
  const dir = join(credDir, name);
  mkdirSync(dir, { recursive: true });
  const gen = `..gen_${++generation}`;
  mkdirSync(join(dir, gen));
  for (const [k, v] of Object.entries(data)) writeFileSync(join(dir, gen, k), v);
  symlinkSync(gen, join(dir, '..data_tmp'));
  renameSync(join(dir, '..data_tmp'), join(dir, '..data')); // the atomic swap
  for (const k of Object.keys(data)) {
    try {
      symlinkSync(join('..data', k), join(dir, k));
    } catch {
      // already linked through ..data
    }
  }
}

beforeAll(async () => {
  pki = await createTestPki();
  credDir = mkdtempSync(join(pki.dir, 'creds-'));
});

describe('DirCredentialSource', () => {
  it('reads DIR/name/key into memory, follows the kubelet\'s symlink swap, and says when a file is missing', async () => {
    writeSecret('src-test', { apiKey: `${KEY1}\n` });
    const src = new DirCredentialSource({ dir: credDir, log: createLogger('t', { level: 'silent' }), pollMs: 30 });
    const cred = { provider: 'openai' as const, secretRef: { name: 'src-test', key: 'apiKey' } };
    const missing = { provider: 'openai' as const, secretRef: { name: 'nope', key: 'apiKey' } };
    const release = src.use([cred, missing]);
    await src.settled(cred, new AbortController().signal);
    expect(src.get(cred)).toEqual({ kind: 'api-key', value: KEY1 });
    expect(src.get(missing)).toMatchObject({ error: expect.stringContaining('missing or unreadable') });
    writeSecret('src-test', { apiKey: KEY2 });
    const seen = await eventually(async () => (src.get(cred) as { value?: string }).value === KEY2);
    expect(seen).toBe(true);
    release();
    expect(src.get(cred)).toBeUndefined(); // released: no longer held in memory
    src.close();
  });
});

describe('a policy with credentials and no source', () => {
  it('does not become ready, and says which flag is missing', async () => {
    const p = await startTestProxy(pki, {
      policyText: 'apiVersion: aigress.io/v1alpha1\nkind: EgressPolicy\nmetadata: { name: m }\nspec:\n  credentials: [{ provider: openai, secretRef: { name: k, key: v } }]\n',
      buildPipeline,
    });
    await expect(p.handle.ready).rejects.toThrow(/spec\.credentials: this proxy has no credential source \(standalone: --credentials-dir DIR/);
    await p.handle.close();
  });
});

describe('aigress proxy --credentials-dir', () => {
  let proxy: TestProxy;
  let upstream: Awaited<ReturnType<typeof fakeUpstream>>;
  const got: { authorization?: string; key?: string; path?: string }[] = [];
  const log = captureLogger();

  beforeAll(async () => {
    writeSecret('openai-key', { apiKey: `${KEY1}\n` });
    upstream = await fakeUpstream(pki, 'api.openai.com', (req, res) => {
      got.push({ authorization: req.headers.authorization, key: req.headers['x-api-key'] as string | undefined, path: req.url });
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ id: 'c', object: 'chat.completion', model: 'gpt-4o', choices: [], usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } }));
      });
    });
    proxy = await startTestProxy(pki, {
      policyText: [
        'apiVersion: aigress.io/v1alpha1',
        'kind: EgressPolicy',
        'metadata: { name: managed }',
        'spec:',
        '  providers: [openai]',
        '  credentials: [{ provider: openai, secretRef: { name: openai-key, key: apiKey } }]',
        '',
      ].join('\n'),
      buildPipeline,
      credentials: { kind: 'dir', dir: credDir, pollMs: 50 },
      resolve: { 'api.openai.com': { host: '127.0.0.1', port: upstream.port } },
      logger: log.logger,
    });
    await proxy.handle.ready;
  });
  afterAll(async () => {
    await proxy?.handle.close();
    await upstream?.close();
    rmSync(credDir, { recursive: true, force: true });
  });

  const call = () =>
    callTls(proxy.handle.capturePort, 'api.openai.com', pki.caPem, {
      headers: { authorization: `Bearer ${PLACEHOLDER}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] }),
    });

  it('the app sends a placeholder, the provider receives the managed key', async () => {
    const r = await call();
    expect(r.status).toBe(200);
    expect(got.at(-1)!.authorization).toBe(`Bearer ${KEY1}`);
  });

  it('a rotated file reaches the next requests, with no request failing or carrying the app\'s key', async () => {
    const before = got.length;
    writeSecret('openai-key', { apiKey: KEY2 });
    const statuses: number[] = [];
    const rotated = await eventually(async () => {
      const r = await call();
      statuses.push(r.status);
      return got.at(-1)!.authorization === `Bearer ${KEY2}`;
    }, 5_000);
    expect(rotated).toBe(true);
    // once the new key is used, every later request uses it
    for (let i = 0; i < 5; i++) statuses.push((await call()).status);
    expect(got.slice(-5).map((g) => g.authorization)).toEqual(Array(5).fill(`Bearer ${KEY2}`));
    expect(statuses.every((s) => s === 200)).toBe(true);
    expect(got.slice(before).every((g) => g.authorization === `Bearer ${KEY1}` || g.authorization === `Bearer ${KEY2}`)).toBe(true);
    expect(log.raw.some((l) => l.includes('credential changed'))).toBe(true);
  });

  it('a deleted credential file fails closed: 503, nothing sent upstream', async () => {
    rmSync(join(credDir, 'openai-key'), { recursive: true, force: true });
    const n = got.length;
    const r = await eventually(async () => {
      const x = await call();
      return x.status === 503 ? x : undefined;
    }, 5_000);
    expect(r?.status).toBe(503);
    expect(JSON.parse(r!.body.toString())).toMatchObject({ error: { message: expect.stringContaining('openai-key/apiKey') } });
    // a refused request never reaches the provider, and nothing before it went out without the managed key
    const m = got.length;
    expect((await call()).status).toBe(503);
    expect(got.length).toBe(m);
    expect(got.slice(n).every((g) => g.authorization === `Bearer ${KEY2}`)).toBe(true);
    writeSecret('openai-key', { apiKey: KEY2 });
  });

  it('no log line holds a key, in clear or base64', () => {
    expect(log.raw.length).toBeGreaterThan(3);
    for (const key of [KEY1, KEY2]) {
      for (const form of [key, Buffer.from(key).toString('base64'), Buffer.from(key).toString('base64url'), Buffer.from(`Bearer ${key}`).toString('base64')]) {
        for (const line of log.raw) expect(line).not.toContain(form);
      }
    }
  });
});
