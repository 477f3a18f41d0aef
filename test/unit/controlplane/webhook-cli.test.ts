import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:https';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeApiServer } from '../../support/fake-apiserver.js';
import { writeKubeconfig } from '../../support/kubeconfig.js';
// rebuilds dist/ when webhook/, cli/ or shared/ sources are newer than it
import { ensureBuilt } from '../inject/built-cli.js';

// `aigress webhook` as a process, against the fake API server through a kubeconfig file: the control plane
// comes up (CA bootstrapped, caBundle written, issuer and policy endpoints mounted) and stops on SIGTERM.

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = join(ROOT, 'bin/aigress.js');

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

function run(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: { PATH: process.env.PATH, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('aigress webhook with a cluster', () => {
  let api: FakeApiServer;
  let dir: string;
  let kubeconfig: string;

  beforeAll(async () => {
    ensureBuilt();
    api = await FakeApiServer.start();
    api.put('v1', 'namespaces', { metadata: { name: 'aigress-system' } });
    api.put('admissionregistration.k8s.io/v1', 'mutatingwebhookconfigurations', {
      metadata: { name: 'aigress' },
      webhooks: [{ name: 'pods.aigress.io', clientConfig: { service: { name: 'aigress', namespace: 'aigress-system' } }, admissionReviewVersions: ['v1'], sideEffects: 'None' }],
    });
    dir = await mkdtemp(join(tmpdir(), 'aigress-cli-'));
    kubeconfig = join(dir, 'kubeconfig');
    await writeKubeconfig(kubeconfig, api, 'cp');
  }, 120_000);
  afterAll(async () => {
    await api.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('starts the control plane, serves the issuer and policy endpoints beside /mutate, and stops on SIGTERM', async () => {
    const port = await freePort();
    const child: ChildProcess = spawn(process.execPath, [BIN, 'webhook', '--kubeconfig', kubeconfig, '--port', String(port), '--host', '127.0.0.1'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH },
    });
    let out = '';
    child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
    const exited = new Promise<number | null>((r) => child.on('close', r));
    try {
      for (let i = 0; i < 300 && !out.includes('webhook listening'); i++) await new Promise((r) => setTimeout(r, 50));
      expect(out).toContain('webhook listening');
      expect(out).toContain('CA bootstrapped');
      expect(out).not.toContain('PRIVATE KEY');
      const bundle = (): string | undefined =>
        (api.get('admissionregistration.k8s.io/v1', 'mutatingwebhookconfigurations', undefined, 'aigress')!.webhooks as Array<{ clientConfig: { caBundle?: string } }>)[0]!
          .clientConfig.caBundle;
      for (let i = 0; i < 100 && !bundle(); i++) await new Promise((r) => setTimeout(r, 50));
      const caPem = Buffer.from(bundle()!, 'base64').toString();
      const get = (path: string): Promise<{ status: number; body: string }> =>
        new Promise((resolve, reject) => {
          request({ host: '127.0.0.1', port, path, servername: 'aigress.aigress-system.svc', ca: caPem }, (res) => {
            let body = '';
            res.on('data', (c: Buffer) => (body += c.toString()));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
          })
            .on('error', reject)
            .end();
        });
      const ca = await get('/v1/ca');
      expect(ca).toEqual({ status: 200, body: caPem });
      const policy = await get('/v1/policy');
      expect(policy.status).toBe(401); // mounted, and asks for a token
      const metrics = await get('/metrics');
      expect(metrics.body).toContain('aigress_issuer_certificates_issued_total');
      expect(metrics.body).toContain('aigress_webhook_admissions_total');
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });

  it('refuses bad control plane flags with one line', async () => {
    const bad = await run(['webhook', '--kubeconfig', kubeconfig, '--ca-source', 'vault']);
    expect([bad.code, bad.stderr]).toEqual([2, 'aigress: --ca-source "vault": must be secret or files\n']);
    const missing = await run(['webhook', '--kubeconfig', join(dir, 'nope')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^aigress: --kubeconfig .*nope: .*\n$/);
    const both = await run(['webhook', '--kubeconfig', kubeconfig, '--tls-cert', 'a', '--tls-key', 'b']);
    expect([both.code, both.stderr]).toEqual([2, 'aigress: --tls-cert/--tls-key cannot be used with the control plane: it issues its own serving certificate from its CA\n']);
  });
});
