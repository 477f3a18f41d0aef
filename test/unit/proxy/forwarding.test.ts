import { request as httpsRequest } from 'node:https';
import { connect as netConnect, createServer, type AddressInfo } from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCA, issueLeaf, loadCA } from '../../../shared/pki.js';
import {
  callPlain,
  callTls,
  createTestPki,
  fakeUpstream,
  metricValue,
  startTestProxy,
  type TestPki,
  type TestProxy,
} from './support.js';

// The mediated path end to end on loopback: app → capture port (TLS with the provider's name) → proxy →
// fake provider (TLS, its own test root), and every way that can go wrong.

type Handler = (req: IncomingMessage, res: ServerResponse, body: Buffer) => void;

let pki: TestPki;
let proxy: TestProxy;
let slowProxy: TestProxy;
let handler: Handler;
const upstreamSeen: { method: string; url: string; rawHeaders: string[]; body: Buffer }[] = [];
const closers: (() => Promise<void>)[] = [];
let refusedPort: number;
let openaiPort: number;
let untrustedPort: number;

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

beforeAll(async () => {
  pki = await createTestPki();
  const dispatch = (req: IncomingMessage, res: ServerResponse): void => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      upstreamSeen.push({ method: req.method!, url: req.url!, rawHeaders: req.rawHeaders, body });
      handler(req, res, body);
    });
  };
  const openai = await fakeUpstream(pki, 'api.openai.com', dispatch);
  closers.push(openai.close);
  openaiPort = openai.port;
  refusedPort = await freePort();
  // A provider whose certificate chains to a root the proxy does not trust.
  const otherRoot = await createCA('untrusted root', 2);
  const leaf = await issueLeaf(await loadCA(otherRoot.certPem, otherRoot.keyPem), { dnsNames: ['api.mistral.ai'] });
  const { createServer: createHttps } = await import('node:https');
  const untrusted = createHttps({ cert: leaf.certPem, key: leaf.keyPem }, (_q, s) => s.end('should not be reached'));
  await new Promise<void>((r) => untrusted.listen(0, '127.0.0.1', r));
  untrustedPort = (untrusted.address() as AddressInfo).port;
  closers.push(() => new Promise((r) => untrusted.close(() => r())));

  const resolve = {
    'api.openai.com': { host: '127.0.0.1', port: openai.port },
    'api.anthropic.com': { host: '127.0.0.1', port: refusedPort },
    'api.mistral.ai': { host: '127.0.0.1', port: untrustedPort },
  };
  const policy = [
    'apiVersion: aigress.io/v1alpha1',
    'kind: EgressPolicy',
    'metadata: { name: test }',
    'spec:',
    '  providers: [openai, anthropic, mistral]',
    '',
  ].join('\n');
  proxy = await startTestProxy(pki, { resolve, maxBodyBytes: 1024, policyText: policy });
  slowProxy = await startTestProxy(pki, { resolve, upstreamTimeoutMs: 300 });
  await Promise.all([proxy.handle.ready, slowProxy.handle.ready]);
});

afterAll(async () => {
  await Promise.all([proxy?.handle.close(), slowProxy?.handle.close()]);
  await Promise.all(closers.map((c) => c()));
});

async function metric(p: TestProxy, name: string, labels: Record<string, string> = {}): Promise<number> {
  return metricValue(await p.handle.registry.metrics(), name, labels);
}

describe('forwarding', () => {
  it('forwards a JSON request and its response byte for byte, headers and credentials intact', async () => {
    const reqBody = Buffer.from('{"model":"gpt-4o",  "messages":[{"role":"user","content":"h\u00e9llo \u2603"}]}\n');
    const resBody = Buffer.from('{ "id":"chatcmpl-1", "choices":[] }');
    handler = (_q, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json', 'X-Request-Id': 'req-123', 'Content-Length': String(resBody.length) });
      res.end(resBody);
    };
    const before = upstreamSeen.length;
    const r = await callTls(proxy.handle.capturePort, 'api.openai.com', pki.caPem, {
      path: '/v1/chat/completions?api-version=1',
      body: reqBody,
      headers: { 'Content-Type': 'application/json', Authorization: 'Bearer sk-test', 'X-Custom': 'a' },
    });
    expect(r.status).toBe(200);
    expect(r.body.equals(resBody)).toBe(true);
    expect(r.headers['x-request-id']).toBe('req-123');
    expect(r.headers['content-length']).toBe(String(resBody.length));
    const seen = upstreamSeen[before]!;
    expect(seen.body.equals(reqBody)).toBe(true);
    expect(seen.url).toBe('/v1/chat/completions?api-version=1');
    const h = Object.fromEntries(seen.rawHeaders.flatMap((v, i, a) => (i % 2 === 0 ? [[v, a[i + 1]]] : [])));
    expect(h).toMatchObject({ host: 'api.openai.com', 'Content-Type': 'application/json', Authorization: 'Bearer sk-test', 'X-Custom': 'a' });
    expect(h['content-length']).toBe(String(reqBody.length)); // undici writes this one itself, lower-case
    expect(await metric(proxy, 'aigress_requests_total', { provider: 'openai', decision: 'allow', code: '200' })).toBeGreaterThanOrEqual(1);
  });

  it('mediates plain HTTP to a provider host and originates TLS upstream', async () => {
    handler = (_q, res) => res.end('plain ok');
    const before = upstreamSeen.length;
    const r = await callPlain(proxy.handle.capturePort, 'api.openai.com:80', { body: 'x' });
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe('plain ok');
    const h = upstreamSeen[before]!.rawHeaders;
    expect(h[h.findIndex((v) => v.toLowerCase() === 'host') + 1]).toBe('api.openai.com'); // not :80 on a 443 hop
  });

  it('streams SSE event by event: the app has the first event before the provider sends the second', async () => {
    const order: string[] = [];
    let firstSeen!: () => void;
    const seen = new Promise<void>((r) => (firstSeen = r));
    handler = (_q, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.write('data: {"n":1}\n\n');
      const guard = setTimeout(() => order.push('timeout: first event never reached the app'), 5_000);
      void seen.then(() => {
        clearTimeout(guard);
        order.push('upstream sends second');
        res.write('data: {"n":2}\n\n');
        res.end('data: [DONE]\n\n');
      });
    };
    const text = await new Promise<string>((resolve, reject) => {
      const req = httpsRequest(
        { host: '127.0.0.1', port: proxy.handle.capturePort, servername: 'api.openai.com', ca: pki.caPem, method: 'POST', path: '/v1/chat/completions', headers: { host: 'api.openai.com' }, agent: false },
        (res) => {
          let acc = '';
          res.on('data', (c: Buffer) => {
            acc += c.toString();
            if (acc.includes('"n":1') && !order.includes('app has first')) {
              order.push('app has first');
              firstSeen();
            }
          });
          res.on('end', () => resolve(acc));
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end('{"stream":true}');
    });
    expect(order).toEqual(['app has first', 'upstream sends second']);
    expect(text).toBe('data: {"n":1}\n\ndata: {"n":2}\n\ndata: [DONE]\n\n');
  });
});

describe('limits and refusals', () => {
  it('answers 413 in OpenAI\'s error shape when the declared body is over the limit, without calling the provider', async () => {
    const before = upstreamSeen.length;
    const tooLarge = await metric(proxy, 'aigress_request_body_too_large_total');
    const r = await callTls(proxy.handle.capturePort, 'api.openai.com', pki.caPem, { body: Buffer.alloc(2000, 'a') });
    expect(r.status).toBe(413);
    expect(JSON.parse(r.body.toString())).toMatchObject({ error: { type: 'invalid_request_error', code: 'aigress_too_large' } });
    expect(r.headers['x-aigress-denied']).toBe('too_large');
    expect(upstreamSeen.length).toBe(before);
    expect(await metric(proxy, 'aigress_request_body_too_large_total')).toBe(tooLarge + 1);
  });

  it('answers 413 in Anthropic\'s error shape when a chunked body grows over the limit', async () => {
    const r = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpsRequest(
        { host: '127.0.0.1', port: proxy.handle.capturePort, servername: 'api.anthropic.com', ca: pki.caPem, method: 'POST', path: '/v1/messages', headers: { host: 'api.anthropic.com' }, agent: false },
        (res) => {
          let b = '';
          res.on('data', (c: Buffer) => (b += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode!, body: b }));
        },
      );
      req.on('error', reject);
      req.write(Buffer.alloc(700, 'a')); // no content-length: chunked
      req.end(Buffer.alloc(700, 'b'));
    });
    expect(r.status).toBe(413);
    expect(JSON.parse(r.body)).toEqual({ type: 'error', error: { type: 'request_too_large', message: expect.stringContaining('1024 bytes') } });
  });

  it('refuses with 421 when Host disagrees with the SNI', async () => {
    const before = upstreamSeen.length;
    const r = await callTls(proxy.handle.capturePort, 'api.anthropic.com', pki.caPem, { servername: 'api.openai.com', body: '{}' });
    expect(r.status).toBe(421);
    expect(JSON.parse(r.body.toString())).toMatchObject({ error: { code: 'aigress_misdirected' } }); // OpenAI's shape: the SNI's provider
    expect(upstreamSeen.length).toBe(before);
  });

  it('refuses an absolute-form target for another host on a terminated connection with 421', async () => {
    const r = await callTls(proxy.handle.capturePort, 'api.openai.com', pki.caPem, { path: 'http://evil.example/steal', body: '{}' });
    expect(r.status).toBe(421);
  });
});

describe('upstream failures', () => {
  it('answers 502 in the provider\'s shape when the provider refuses the connection, and counts it', async () => {
    const r = await callTls(proxy.handle.capturePort, 'api.anthropic.com', pki.caPem, { path: '/v1/messages', body: '{}' });
    expect(r.status).toBe(502);
    expect(JSON.parse(r.body.toString())).toMatchObject({ type: 'error', error: { type: 'api_error' } });
    expect(await metric(proxy, 'aigress_upstream_errors_total', { provider: 'anthropic', reason: 'refused' })).toBe(1);
    expect(await metric(proxy, 'aigress_requests_total', { provider: 'anthropic', decision: 'error', code: '502' })).toBe(1);
  });

  it('answers 502 when the provider\'s certificate does not verify (never falls back to trusting it)', async () => {
    const r = await callTls(proxy.handle.capturePort, 'api.mistral.ai', pki.caPem, { body: '{}' });
    expect(r.status).toBe(502);
    expect(r.body.toString()).not.toContain('should not be reached');
    expect(await metric(proxy, 'aigress_upstream_errors_total', { provider: 'mistral', reason: 'tls' })).toBe(1);
  });

  it('answers 504 when the provider does not answer within the upstream timeout', async () => {
    handler = () => undefined; // never answers
    const r = await callTls(slowProxy.handle.capturePort, 'api.openai.com', pki.caPem, { body: '{}' });
    expect(r.status).toBe(504);
    expect(JSON.parse(r.body.toString())).toMatchObject({ error: { code: 'aigress_timeout' } });
    expect(await metric(slowProxy, 'aigress_upstream_errors_total', { provider: 'openai', reason: 'timeout' })).toBe(1);
  });

  it('closes the app\'s connection when the provider\'s stream breaks midway (no error appended)', async () => {
    handler = (_q, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: {"n":1}\n\n');
      setTimeout(() => res.socket?.destroy(), 50);
    };
    const outcome = await new Promise<{ got: string; ended: 'end' | 'error' | 'aborted' }>((resolve) => {
      const req = httpsRequest(
        { host: '127.0.0.1', port: proxy.handle.capturePort, servername: 'api.openai.com', ca: pki.caPem, method: 'POST', path: '/v1/chat/completions', headers: { host: 'api.openai.com' }, agent: false },
        (res) => {
          let got = '';
          res.on('data', (c: Buffer) => (got += c.toString()));
          res.on('end', () => resolve({ got, ended: 'end' }));
          res.on('aborted', () => resolve({ got, ended: 'aborted' }));
          res.on('error', () => resolve({ got, ended: 'error' }));
        },
      );
      req.on('error', () => undefined);
      req.end('{}');
    });
    expect(outcome.ended).not.toBe('end');
    expect(outcome.got).toBe('data: {"n":1}\n\n');
    expect(await metric(proxy, 'aigress_upstream_errors_total', { provider: 'openai', reason: 'truncated' })).toBe(1);
  });
});

describe('with the real policy pipeline', () => {
  let real: TestProxy;
  beforeAll(async () => {
    const { buildPipeline } = await import('../../../sidecar/pipeline/index.js');
    real = await startTestProxy(pki, { resolve: { 'api.openai.com': { host: '127.0.0.1', port: openaiPort } }, buildPipeline });
    await real.handle.ready;
  });
  afterAll(() => real.handle.close());

  it('still forwards the response body unchanged and counts the request with the processors\' labels', async () => {
    const resBody = Buffer.from('{"id":"c1","object":"chat.completion","model":"gpt-4o","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}');
    handler = (_q, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(resBody.length) });
      res.end(resBody);
    };
    const r = await callTls(real.handle.capturePort, 'api.openai.com', pki.caPem, {
      body: '{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}',
      headers: { 'content-type': 'application/json' },
    });
    expect(r.status).toBe(200);
    expect(r.body.equals(resBody)).toBe(true);
    expect(r.headers['content-length']).toBe(String(resBody.length)); // metering only reads: the framing is kept
    const text = await real.handle.registry.metrics();
    const line = text.split('\n').find((l) => l.startsWith('aigress_requests_total{') && l.includes('decision="allow"'));
    expect(line).toBeDefined();
    expect(line).not.toContain('operation="unknown"');
  });
});

describe('plain HTTP to an AI host', () => {
  /** Writes raw bytes to the capture port and collects the reply until the proxy closes or `ms` pass. */
  function raw(bytes: string, ms = 2_000): Promise<string> {
    return new Promise((resolve) => {
      const s = netConnect({ host: '127.0.0.1', port: proxy.handle.capturePort }, () => s.write(bytes));
      let out = '';
      s.on('data', (c: Buffer) => (out += c.toString('latin1')));
      s.on('close', () => resolve(out));
      s.on('error', () => undefined);
      setTimeout(() => s.destroy(), ms);
    });
  }

  it('refuses a second request on the connection that names another Host (no switching hosts mid-connection)', async () => {
    handler = (_q, res) => res.end('ok');
    const out = await raw(
      'GET /v1/models HTTP/1.1\r\nHost: api.openai.com\r\n\r\n' + 'GET /v1/models HTTP/1.1\r\nHost: api.anthropic.com\r\nConnection: close\r\n\r\n',
    );
    const statuses = [...out.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => m[1]);
    expect(statuses).toEqual(['200', '421']);
  });

  it('answers Expect: 100-continue with 413 before the upload when the declared body is over the limit', async () => {
    const out = await raw('POST /v1/chat/completions HTTP/1.1\r\nHost: api.openai.com\r\nContent-Length: 5000\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n', 500);
    expect(out).toMatch(/^HTTP\/1\.1 413 /);
    expect(out).not.toContain('100 Continue');
  });

  it('lets an upload under the limit continue after 100 Continue', async () => {
    handler = (_q, res, body) => res.end(`got ${body.length}`);
    const s = netConnect({ host: '127.0.0.1', port: proxy.handle.capturePort });
    s.write('POST /v1/chat/completions HTTP/1.1\r\nHost: api.openai.com\r\nContent-Length: 10\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n');
    let out = '';
    await new Promise<void>((resolve) => {
      s.on('data', (c: Buffer) => {
        out += c.toString();
        if (out.includes('100 Continue') && !out.includes('sent')) {
          out += '(sent)';
          s.write('0123456789');
        }
      });
      s.on('close', () => resolve());
    });
    expect(out).toMatch(/^HTTP\/1\.1 100 Continue/);
    expect(out).toContain('got 10');
  });

  it('refuses protocol upgrades (WebSocket) it cannot inspect, in the provider\'s shape', async () => {
    const out = await raw('GET /v1/realtime HTTP/1.1\r\nHost: api.openai.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n');
    expect(out).toMatch(/^HTTP\/1\.1 501 /);
    expect(out).toContain('"code":"aigress_policy"');
  });
});
