import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { peek } from '../../sidecar/proxy/peek.js';
import { clientTlsEnd } from '../../sidecar/proxy/connection.js';
import { captureLogger, createTestPki, metricValue, startTestProxy, type TestPki, type TestProxy } from '../unit/proxy/support.js';
import { exchange, tcpTo } from './support.js';

// Names an app can put in a ClientHello, and what the proxy says about connections that end without a request.

const IP = '203.0.113.170';

/** A real ClientHello (Node's own) whose server_name is replaced by `name`, byte for byte (same length). */
async function clientHelloFor(name: string): Promise<Buffer> {
  const placeholder = `${'a'.repeat(name.length - 4)}.com`; // a name Node sends as SNI, as long as `name`
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const hello = new Promise<Buffer>((resolve) =>
    server.once('connection', (s) =>
      s.once('data', (d: Buffer) => {
        resolve(d);
        s.destroy();
      }),
    ),
  );
  const c = tlsConnect({ host: '127.0.0.1', port, servername: placeholder });
  c.on('error', () => undefined);
  const raw = Buffer.from(await hello);
  c.destroy();
  server.close();
  raw.write(name, raw.indexOf(placeholder), 'latin1');
  return raw;
}

let pki: TestPki;
let proxy: TestProxy;
let dialed = 0;
let sink: Server;
const cap = captureLogger();

beforeAll(async () => {
  pki = await createTestPki();
  // Were the IP-literal SNI passed through, it would be dialed here.
  sink = createServer((s) => {
    dialed++;
    s.destroy();
  });
  await new Promise<void>((r) => sink.listen(0, '127.0.0.1', r));
  const port = (sink.address() as { port: number }).port;
  proxy = await startTestProxy(pki, { logger: cap.logger, resolve: { [IP]: { host: '127.0.0.1', port } } });
  await proxy.handle.ready;
});
afterAll(async () => {
  await proxy.handle.close();
  sink.close();
});

describe('an IPv4 literal as SNI', () => {
  it('is closed as a connection without a name, never passed through', async () => {
    const hello = await clientHelloFor(IP);
    expect(peek(hello)).toEqual({ kind: 'tls', sni: IP });
    const before = metricValue(await proxy.handle.registry.metrics(), 'aigress_connections_total', { route: 'refused' });
    const { text } = await exchange(await tcpTo(proxy.handle.capturePort), hello);
    expect(text).toBe('');
    expect(dialed).toBe(0);
    expect(metricValue(await proxy.handle.registry.metrics(), 'aigress_connections_total', { route: 'refused' })).toBe(before + 1);
  });
});

describe('TLS connections that end without a request', () => {
  it('500 handshake-only connections: all counted, one warning (with a count of the others), not 500', async () => {
    const metric = async (): Promise<number> =>
      metricValue(await proxy.handle.registry.metrics(), 'aigress_client_tls_errors_total', { provider: 'openai', stage: 'after_handshake' });
    const before = await metric();
    const warned = (): Record<string, unknown>[] => cap.lines.filter((l) => l.reason === 'no-request');
    for (let i = 0; i < 500; i += 50) {
      await Promise.all(Array.from({ length: 50 }, () => new Promise<void>((resolve) => {
        const s = tlsConnect({ host: '127.0.0.1', port: proxy.handle.capturePort, servername: 'api.openai.com', ca: pki.caPem }, () => s.end());
        s.on('close', () => resolve());
        s.on('error', () => undefined);
      })));
    }
    const deadline = Date.now() + 3_000;
    while ((await metric()) < before + 500 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    expect(await metric()).toBe(before + 500);
    expect(warned()).toHaveLength(1);
    expect(String(warned()[0]!.msg)).not.toMatch(/trust/);
  });

  it('an app that rejects the certificate (curl, with its alert) is told apart from one that just hung up', async () => {
    const port = proxy.handle.capturePort;
    // curl without the aigress CA: OpenSSL sends an unknown_ca alert, as most TLS stacks do.
    await new Promise<void>((resolve) => {
      execFile('curl', ['-sS', '--max-time', '5', '--resolve', `api.anthropic.com:${port}:127.0.0.1`, `https://api.anthropic.com:${port}/v1/messages`], () => resolve());
    });
    const deadline = Date.now() + 3_000;
    while (!cap.lines.some((l) => l.reason === 'certificate-rejected') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    const line = cap.lines.find((l) => l.reason === 'certificate-rejected');
    expect(line?.msg).toMatch(/rejected the aigress certificate: does it trust the aigress CA bundle/);
    expect(line?.host).toBe('api.anthropic.com');
    expect(line?.err).toBe('ERR_SSL_TLSV1_ALERT_UNKNOWN_CA');
  });

  it('words each ending for what happened (pure)', () => {
    expect(clientTlsEnd('handshake', 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA').reason).toBe('certificate-rejected');
    expect(clientTlsEnd('handshake', 'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE').reason).toBe('certificate-rejected');
    expect(clientTlsEnd('handshake', 'ECONNRESET').reason).toBe('closed-during-handshake');
    expect(clientTlsEnd('handshake', undefined).reason).toBe('closed-during-handshake');
    expect(clientTlsEnd('handshake', 'ERR_SSL_NO_SHARED_CIPHER').reason).toBe('handshake-failed');
    expect(clientTlsEnd('after_handshake', undefined).message).not.toMatch(/trust the aigress CA/);
  });
});
