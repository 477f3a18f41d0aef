import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { BIN, ROOT, ensureBuilt, runCli } from '../inject/built-cli.js';
import { call, decodePatch, review, testPki, type AdmissionResponseBody } from './support.js';

beforeAll(() => ensureBuilt(), 180_000);

const freePort = (): Promise<number> =>
  new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });

describe('aigress webhook (the binary)', () => {
  it.each([
    [['--port', 'http'], 2, 'aigress: --port "http": must be a port number (1-65535)\n'],
    [['--tls-cert', '/tls.crt'], 2, 'aigress: --tls-cert and --tls-key go together: give both or neither\n'],
    [['--tls-cert', '/none.crt', '--tls-key', '/none.key'], 1, 'aigress: cannot load the TLS certificate (/none.crt, /none.key): ENOENT\n'],
    [['--config', '/none.yaml'], 1, 'aigress: cannot read config file /none.yaml: ENOENT\n'],
  ])('refuses %j with one line and exit %i', async (args, code, stderr) => {
    const r = await runCli(['webhook', ...args]);
    expect(r.code).toBe(code);
    expect(r.stderr).toBe(stderr);
  });

  it('serves /mutate with the given certificate, logs each admission as JSON, and exits 0 on SIGTERM', async () => {
    const pki = await testPki();
    const dir = mkdtempSync(join(tmpdir(), 'aigress-webhook-cli-'));
    writeFileSync(join(dir, 'tls.crt'), pki.serving.certPem);
    writeFileSync(join(dir, 'tls.key'), pki.serving.keyPem);
    const port = await freePort();
    const child = spawn(process.execPath, [BIN, 'webhook', '--tls-cert', join(dir, 'tls.crt'), '--tls-key', join(dir, 'tls.key'), '--port', String(port), '--host', '127.0.0.1'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    try {
      for (let i = 0; i < 200 && !stdout.includes('webhook listening'); i++) await new Promise((r) => setTimeout(r, 50));
      const target = { port, caPem: pki.caPem };
      const res = await call(target, 'POST', '/mutate', JSON.stringify(review({ metadata: { name: 'p' }, spec: { containers: [{ name: 'a' }] } }, { uid: 'cli-uid' })));
      expect(res.status).toBe(200);
      expect(decodePatch(res.json() as AdmissionResponseBody).length).toBeGreaterThan(0);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    const lines = stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.find((l) => l.uid === 'cli-uid')).toMatchObject({ msg: 'admission', decision: 'injected', namespace: 'team-a', pod: 'p' });
    expect(lines.at(-1)).toMatchObject({ msg: 'shutting down', signal: 'SIGTERM' });
  });
});
