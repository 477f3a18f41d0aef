import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCA } from '../../shared/pki.js';
import { callTls, createTestPki, fakeUpstream, startTestProxy, type TestPki } from '../unit/proxy/support.js';
import { h2Result, h2Session, tcpTo, tlsTo } from './support.js';

// Drain, as a pod's termination runs it: after SIGTERM the proxy accepts no new connection, lets the requests in
// flight finish, closes idle ones, and exits 0 as soon as nothing is left: long before --drain-timeout (60 s
// here; these tests end well within their own timeout), not at it.

const OPENAI = 'api.openai.com';
const BIN = join(import.meta.dirname, '../../bin/aigress.js');

/** Resolves with the bytes a socket received once it closes. */
function collect(socket: Duplex): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
  });
}

const refused = (port: number): Promise<string> =>
  tcpTo(port).then(
    (s) => {
      s.destroy();
      return 'accepted';
    },
    (err: NodeJS.ErrnoException) => err.code ?? 'error',
  );

describe('the proxy process on SIGTERM', () => {
  let dir: string;
  let pki: TestPki;
  let child: ChildProcess | undefined;

  beforeAll(async () => {
    if (!existsSync(join(import.meta.dirname, '../../dist/cli/main.js'))) throw new Error('dist/ is missing: run `npm run -s build` before this test');
    pki = await createTestPki();
    dir = mkdtempSync(join(tmpdir(), 'aigress-drain-'));
    const ca = await createCA('drain test CA', 2);
    mkdirSync(join(dir, 'ca'));
    writeFileSync(join(dir, 'ca', 'ca.crt'), ca.certPem);
    writeFileSync(join(dir, 'ca', 'ca.key'), ca.keyPem);
    pki = { ...pki, caPem: ca.certPem };
    // gpt-4o is denied: the proxy answers it itself (403), so no provider is needed and none is ever called.
    writeFileSync(
      join(dir, 'policy.yaml'),
      ['apiVersion: aigress.io/v1alpha1', 'kind: EgressPolicy', 'metadata: { name: drain }', 'spec:', '  providers: [openai]', '  models: { deny: [gpt-4o] }', '  unmatchedEgress: deny', ''].join('\n'),
    );
  });
  afterAll(() => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
  });

  it('refuses new connections, closes idle ones, finishes the request in flight, then exits 0 at once', async () => {
    child = spawn(process.execPath, [BIN, 'proxy', '--policy', join(dir, 'policy.yaml'), '--ca-dir', join(dir, 'ca'), '--bundle-dir', join(dir, 'bundle'), '--capture-port', '0', '--admin-port', '0', '--listen-address', '127.0.0.1', '--drain-timeout', '60s'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    const exited = new Promise<number | null>((r) => child!.once('exit', (code) => r(code)));
    const ports = await new Promise<{ capturePort: number; adminPort: number }>((resolve, reject) => {
      child!.stdout!.on('data', () => {
        const line = out.split('\n').find((l) => l.includes('"proxy listening"'));
        if (line) resolve(JSON.parse(line) as { capturePort: number; adminPort: number });
      });
      void exited.then((code) => reject(new Error(`exited ${code}: ${out}`)));
    });
    const readyz = (): Promise<number> =>
      new Promise((resolve) => get({ host: '127.0.0.1', port: ports.adminPort, path: '/readyz' }, (r) => (r.resume(), resolve(r.statusCode ?? 0))).on('error', () => resolve(0)));
    for (let i = 0; i < 400 && (await readyz()) !== 200; i++) await new Promise((r) => setTimeout(r, 25));

    const body = '{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}';
    const head = `POST /v1/chat/completions HTTP/1.1\r\nHost: ${OPENAI}\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n`;
    // An idle keep-alive connection: one request answered, nothing since.
    const idle = await tlsTo(ports.capturePort, OPENAI, pki.caPem);
    const idleSaw = collect(idle);
    idle.write(head + body);
    // The request in flight: its body only half sent.
    const busy = await tlsTo(ports.capturePort, OPENAI, pki.caPem);
    const busySaw = collect(busy);
    busy.write(head + body.slice(0, 10));
    await new Promise((r) => setTimeout(r, 200)); // both heads read by the proxy

    child.kill('SIGTERM');
    while (!out.includes('"draining"')) await new Promise((r) => setTimeout(r, 10));
    expect(await readyz()).toBe(503);
    expect(await refused(ports.capturePort)).toBe('ECONNREFUSED');
    expect(await idleSaw).toMatch(/^HTTP\/1\.1 403 /); // answered, then closed by the drain: not held to the timeout
    expect(child.exitCode).toBe(null); // the busy one keeps it running

    busy.write(body.slice(10));
    const answer = await busySaw;
    expect(answer).toMatch(/^HTTP\/1\.1 403 /);
    expect(answer).toMatch(/connection: close/i);
    expect(await exited).toBe(0);
    expect(out).toContain('"proxy stopped"');
    expect(out).toMatch(/"cutConnections":0/);
  });
});

describe('drain with HTTP/2 and HTTP/1.1 in flight (in process)', () => {
  it('GOAWAY to the session, both in-flight requests answered, no new connection, stopped once idle', async () => {
    const pki = await createTestPki();
    const held: (() => void)[] = [];
    const up = await fakeUpstream(pki, OPENAI, (req, res) => {
      req.resume();
      req.on('end', () => held.push(() => res.end('{"done":true}')));
    });
    const proxy = await startTestProxy(pki, { drainTimeoutMs: 60_000, resolve: { [OPENAI]: { host: '127.0.0.1', port: up.port } } });
    await proxy.handle.ready;
    try {
      const s = await h2Session(proxy.handle.capturePort, OPENAI, pki.caPem);
      const goaway = new Promise<void>((r) => s.once('goaway', () => r()));
      const h2 = h2Result(s.request({ ':method': 'POST', ':path': '/v1/chat/completions' }, { endStream: true }));
      const h1 = callTls(proxy.handle.capturePort, OPENAI, pki.caPem, { body: '{}' });
      while (held.length < 2) await new Promise((r) => setTimeout(r, 10));

      let stopped = false;
      void proxy.handle.stopped.then(() => (stopped = true));
      const drained = proxy.handle.drain();
      await goaway;
      expect(await refused(proxy.handle.capturePort)).toBe('ECONNREFUSED');
      expect(stopped).toBe(false);
      for (const release of held.splice(0)) release();
      expect((await h2).status).toBe(200);
      expect((await h1).status).toBe(200);
      await drained;
      expect(stopped).toBe(true);
    } finally {
      await proxy.handle.close();
      await up.close();
    }
  });
});
