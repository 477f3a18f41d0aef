import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CertificateSource } from '../../../sidecar/proxy/sources/types.js';
import { LocalCaCertificateSource } from '../../../sidecar/proxy/sources/standalone.js';
import {
  adminRequest,
  callPlain,
  callTls,
  eventually,
  createTestPki,
  fakeUpstream,
  metricValue,
  peerCertificate,
  policyYaml,
  startTestProxy,
  type TestPki,
  type TestProxy,
} from './support.js';

// What happens to connections that are not mediated: pass-through, refusal, and the ones with no name.

let pki: TestPki;
let plainServerPort: number;
let tlsConnections = 0;
const closers: (() => Promise<void>)[] = [];
let resolve: Record<string, { host: string; port: number }>;

beforeAll(async () => {
  pki = await createTestPki();
  const site = await fakeUpstream(pki, 'example.org', (_q, res) => res.end('hello from example.org'));
  site.server.on('secureConnection', () => tlsConnections++);
  closers.push(site.close);
  const { createServer } = await import('node:http');
  const plain = createServer((req, res) => res.end(`plain site saw ${req.method} ${req.url} host=${req.headers.host}`));
  await new Promise<void>((r) => plain.listen(0, '127.0.0.1', r));
  plainServerPort = (plain.address() as { port: number }).port;
  closers.push(() => new Promise((r) => plain.close(() => r())));
  // The AI host resolves to the same site: if anything ever passed it through, the site would see it.
  resolve = { 'example.org': { host: '127.0.0.1', port: site.port }, 'plain.example': { host: '127.0.0.1', port: plainServerPort }, 'api.openai.com': { host: '127.0.0.1', port: site.port } };
});

afterAll(async () => {
  await Promise.all(closers.map((c) => c()));
});

/** Sends `bytes` raw and resolves with what came back once the proxy closed the connection. */
function rawExchange(port: number, bytes: Buffer): Promise<{ reply: string; closed: boolean }> {
  return new Promise((res) => {
    const s = netConnect({ host: '127.0.0.1', port }, () => s.write(bytes));
    let reply = '';
    s.on('data', (c: Buffer) => (reply += c.toString('latin1')));
    s.on('close', () => res({ reply, closed: true }));
    s.on('error', () => undefined);
    setTimeout(() => {
      s.destroy();
      res({ reply, closed: false });
    }, 4_000);
  });
}

describe('pass-through', () => {
  let proxy: TestProxy;
  beforeAll(async () => {
    proxy = await startTestProxy(pki, { resolve });
    await proxy.handle.ready;
  });
  afterAll(() => proxy.handle.close());

  it('shows the app the real server\'s certificate for a non-AI host, and ours for an AI host', async () => {
    const real = await peerCertificate(proxy.handle.capturePort, 'example.org');
    expect(real.issuer.CN).toBe('aigress test upstream root');
    expect(real.subject.CN).toBe('example.org');
    const ours = await peerCertificate(proxy.handle.capturePort, 'api.openai.com');
    expect(ours.issuer.CN).toBe('aigress test CA');
    expect(ours.subjectaltname).toBe('DNS:api.openai.com');
  });

  it('carries a whole HTTPS exchange untouched (the app verifies against the real root)', async () => {
    const r = await callTls(proxy.handle.capturePort, 'example.org', pki.upstreamRootPem, { method: 'GET', path: '/' });
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe('hello from example.org');
  });

  it('passes plain HTTP to other hosts through byte for byte', async () => {
    const r = await callPlain(proxy.handle.capturePort, 'plain.example', { method: 'GET', path: '/x?y=1' });
    expect(r.body.toString()).toBe('plain site saw GET /x?y=1 host=plain.example');
    const m = await proxy.handle.registry.metrics();
    expect(metricValue(m, 'aigress_connections_total', { route: 'passthrough_name' })).toBeGreaterThanOrEqual(3);
  });

  it('refuses CONNECT and absolute-form targets that contradict Host on plain HTTP', async () => {
    const connect = await rawExchange(proxy.handle.capturePort, Buffer.from('CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n'));
    expect(connect.reply).toMatch(/^HTTP\/1\.1 403 /);
    const smuggle = await rawExchange(proxy.handle.capturePort, Buffer.from('GET http://api.openai.com/v1/models HTTP/1.1\r\nHost: plain.example\r\n\r\n'));
    expect(smuggle.reply).toMatch(/^HTTP\/1\.1 403 /);
  });
});

describe('unmatchedEgress: deny', () => {
  let proxy: TestProxy;
  beforeAll(async () => {
    proxy = await startTestProxy(pki, { resolve, policyText: policyYaml({ unmatchedEgress: 'deny' }) });
    await proxy.handle.ready;
  });
  afterAll(() => proxy.handle.close());

  it('closes TLS to a non-AI host without reaching it, and answers plain HTTP with 403', async () => {
    const before = tlsConnections;
    await expect(callTls(proxy.handle.capturePort, 'example.org', pki.upstreamRootPem, { method: 'GET' })).rejects.toThrow();
    expect(tlsConnections).toBe(before);
    const plain = await callPlain(proxy.handle.capturePort, 'plain.example', { method: 'GET' });
    expect(plain.status).toBe(403);
    expect(plain.body.toString()).toContain('plain.example');
    const m = await proxy.handle.registry.metrics();
    expect(metricValue(m, 'aigress_connections_total', { route: 'refused' })).toBe(2);
  });

  it('still mediates AI hosts', async () => {
    const ours = await peerCertificate(proxy.handle.capturePort, 'api.openai.com');
    expect(ours.issuer.CN).toBe('aigress test CA');
  });
});

describe('connections without a name', () => {
  let proxy: TestProxy;
  beforeAll(async () => {
    proxy = await startTestProxy(pki, { resolve, peekTimeoutMs: 300 });
    await proxy.handle.ready;
  });
  afterAll(() => proxy.handle.close());

  it('closes garbage, a TLS hello without SNI and a silent client, and counts each as refused on /metrics', async () => {
    const garbage = await rawExchange(proxy.handle.capturePort, Buffer.from([0x00, 0xff, 0x13, 0x37, 0x0a]));
    expect(garbage).toEqual({ reply: '', closed: true });
    const noSni = await new Promise<string>((res) => {
      const s = tlsConnect({ host: '127.0.0.1', port: proxy.handle.capturePort, rejectUnauthorized: false }); // IP: no SNI
      s.on('error', (e: NodeJS.ErrnoException) => res(e.code ?? e.message));
      s.on('secureConnect', () => res('handshake completed'));
    });
    expect(noSni).not.toBe('handshake completed');
    const silent = await rawExchange(proxy.handle.capturePort, Buffer.alloc(0));
    expect(silent.closed).toBe(true); // by the peek timeout, not by the test's own timer
    const noHost = await rawExchange(proxy.handle.capturePort, Buffer.from('GET / HTTP/1.0\r\n\r\n'));
    expect(noHost.reply).toMatch(/^HTTP\/1\.1 400 /);
    const metrics = await adminRequest(proxy, '/metrics');
    expect(metrics.status).toBe(200);
    expect(metricValue(metrics.body, 'aigress_connections_total', { route: 'refused' })).toBe(4);
  });
});

describe('failing closed', () => {
  it('closes an AI host\'s connection when no certificate can be had, and never passes it through', async () => {
    const real = new LocalCaCertificateSource(pki.caDir);
    const broken: CertificateSource = {
      ready: () => real.ready(),
      caPem: () => real.caPem(),
      contextFor: () => Promise.reject(new Error('issuer unavailable')),
      close: () => undefined,
    };
    const proxy = await startTestProxy(pki, { resolve, certificates: broken });
    await proxy.handle.ready;
    const before = tlsConnections;
    await expect(callTls(proxy.handle.capturePort, 'api.openai.com', pki.caPem, { body: '{}' })).rejects.toThrow();
    expect(tlsConnections).toBe(before); // api.openai.com resolves to the site: it was never dialled
    await proxy.handle.close();
  });

  it('counts apps that reject the aigress certificate (they do not trust the bundle)', async () => {
    const proxy = await startTestProxy(pki, { resolve });
    await proxy.handle.ready;
    await expect(callTls(proxy.handle.capturePort, 'api.openai.com', pki.upstreamRootPem, { body: '{}' })).rejects.toThrow(/self.signed|unable to verify|certificate/i);
    // The client aborts the handshake with an alert; the proxy reads it a moment later.
    const counted = await eventually(async () => metricValue(await proxy.handle.registry.metrics(), 'aigress_client_tls_errors_total', { provider: 'openai' }));
    expect(counted).toBe(1);
    await proxy.handle.close();
  });
});

describe('policy changes', () => {
  it('applies a changed policy file to new connections and keeps the last good one on a bad edit', async () => {
    const proxy = await startTestProxy(pki, { resolve });
    await proxy.handle.ready;
    expect((await callPlain(proxy.handle.capturePort, 'plain.example', { method: 'GET' })).status).toBe(200);
    writeFileSync(proxy.policyFile, policyYaml({ unmatchedEgress: 'deny' }));
    const deadline = Date.now() + 5_000;
    let status = 200;
    while (Date.now() < deadline && status !== 403) {
      await new Promise((r) => setTimeout(r, 100));
      status = (await callPlain(proxy.handle.capturePort, 'plain.example', { method: 'GET' })).status;
    }
    expect(status).toBe(403);
    writeFileSync(proxy.policyFile, 'spec: [not, a, policy');
    await new Promise((r) => setTimeout(r, 400));
    expect((await callPlain(proxy.handle.capturePort, 'plain.example', { method: 'GET' })).status).toBe(403);
    await proxy.handle.close();
  });
});

describe('capture listener', () => {
  it('accepts redirected connections on both 127.0.0.1 and ::1 on the same port', async () => {
    const proxy = await startTestProxy(pki, { resolve, listenAddresses: ['127.0.0.1', '::1'] });
    await proxy.handle.ready;
    const v4 = await peerCertificate(proxy.handle.capturePort, 'api.openai.com');
    const v6 = await new Promise<string>((res, rej) => {
      const s = tlsConnect({ host: '::1', port: proxy.handle.capturePort, servername: 'api.openai.com', rejectUnauthorized: false }, () => {
        res(String(s.getPeerCertificate().issuer.CN));
        s.destroy();
      });
      s.on('error', rej);
    });
    expect(v4.issuer.CN).toBe('aigress test CA');
    expect(v6).toBe('aigress test CA');
    await proxy.handle.close();
  });
});
