import type { IncomingMessage, ServerResponse } from 'node:http';
import { connect as h2Connect, type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pipelineOf } from '../../../sidecar/pipeline/index.js';
import type { Pipeline } from '../../../sidecar/pipeline/types.js';
import { h1RequestHeaders, h2ResponseHeaders } from '../../../sidecar/proxy/h2.js';
import {
  callTls,
  captureLogger,
  createTestPki,
  fakeUpstream,
  metricValue,
  metricsText,
  startTestProxy,
  type TestPki,
  type TestProxy,
} from './support.js';

// HTTP/2 between app and proxy: node's own http2 client dials the capture port with the provider's name as SNI
// and ALPN h2, as the AWS SDK's default handler does; the proxy forwards over HTTP/1.1 to a fake provider.

type Handler = (req: IncomingMessage, res: ServerResponse, body: Buffer) => void;
interface Seen {
  method: string;
  url: string;
  rawHeaders: string[];
  body: Buffer;
}

const OPENAI = 'api.openai.com';
let pki: TestPki;
let proxy: TestProxy;
let handler: Handler;
const seen: Seen[] = [];
const closers: (() => Promise<void>)[] = [];
let resolve: Record<string, { host: string; port: number }>;
const cap = captureLogger();

beforeAll(async () => {
  pki = await createTestPki();
  const upstream = await fakeUpstream(pki, OPENAI, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      seen.push({ method: req.method!, url: req.url!, rawHeaders: req.rawHeaders, body });
      handler(req, res, body);
    });
  });
  closers.push(upstream.close);
  resolve = { [OPENAI]: { host: '127.0.0.1', port: upstream.port } };
  proxy = await startTestProxy(pki, { resolve, maxBodyBytes: 1024, logger: cap.logger });
  await proxy.handle.ready;
});

afterAll(async () => {
  await proxy?.handle.close();
  for (const c of closers) await c();
});

/** An HTTP/2 session to the capture port as a redirected app opens it: SNI = the provider, ALPN h2 only. */
function session(port: number, servername = OPENAI): Promise<ClientHttp2Session> {
  return new Promise((resolveSession, reject) => {
    const s = h2Connect(`https://${servername}`, {
      createConnection: () => tlsConnect({ host: '127.0.0.1', port, servername, ca: pki.caPem, ALPNProtocols: ['h2'] }),
    });
    s.once('connect', () => resolveSession(s));
    s.once('error', reject);
  });
}

interface H2Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** The reply on stream `st`; listens from the moment it is called, so call it before writing the body. */
function reply(st: ClientHttp2Stream): Promise<H2Reply> {
  return new Promise((done, reject) => {
    let head: IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    st.on('response', (h) => (head = h));
    st.on('data', (c: Buffer) => chunks.push(c));
    st.on('end', () => done({ status: Number(head[':status']), headers: head, body: Buffer.concat(chunks) }));
    st.on('error', reject);
  });
}

function request(s: ClientHttp2Session, headers: OutgoingHttpHeaders, body?: string | Buffer): Promise<H2Reply> {
  const st = s.request({ ':method': 'POST', ':path': '/v1/chat/completions', ...headers }, { endStream: body === undefined });
  const replied = reply(st);
  if (body !== undefined) st.end(body);
  return replied;
}

const requestsTotal = async (p: TestProxy, labels: Record<string, string>): Promise<number> =>
  metricValue(await metricsText(p.handle), 'aigress_requests_total', labels);

describe('header translation at the HTTP/2 edge (pure)', () => {
  it('turns :authority into host, drops pseudo-headers, joins split cookies, keeps the rest in order', () => {
    const v = h1RequestHeaders([
      ':method', 'POST', ':scheme', 'https', ':authority', 'api.openai.com', ':path', '/v1/x',
      'content-type', 'application/json', 'cookie', 'a=1', 'Authorization', 'Bearer k', 'cookie', 'b=2',
    ]);
    expect(v.rawHeaders).toEqual(['host', 'api.openai.com', 'content-type', 'application/json', 'authorization', 'Bearer k', 'cookie', 'a=1; b=2']);
    expect(v.headers).toEqual({ host: 'api.openai.com', 'content-type': 'application/json', authorization: 'Bearer k', cookie: 'a=1; b=2' });
  });

  it(':authority wins over a host field; host is used when there is no :authority', () => {
    expect(h1RequestHeaders([':authority', 'api.openai.com', 'host', 'evil.example']).rawHeaders).toEqual(['host', 'api.openai.com']);
    expect(h1RequestHeaders(['host', 'api.openai.com:443', 'x-a', '1']).headers).toEqual({ host: 'api.openai.com:443', 'x-a': '1' });
    expect(h1RequestHeaders([':method', 'GET']).headers.host).toBeUndefined();
  });

  it('drops the fields HTTP/2 forbids from a response and keeps repeated ones as separate values', () => {
    const out = h2ResponseHeaders([
      'Content-Type', 'text/event-stream', 'Connection', 'keep-alive', 'Keep-Alive', 'timeout=5', 'Transfer-Encoding', 'chunked',
      'Set-Cookie', 'a=1', 'set-cookie', 'b=2', 'Upgrade', 'h2c', 'HTTP2-Settings', 'x', 'TE', 'trailers', 'Proxy-Connection', 'close',
    ]);
    expect(out).toEqual({ 'content-type': 'text/event-stream', 'set-cookie': ['a=1', 'b=2'] });
    expect(h2ResponseHeaders({ 'content-type': 'application/json', connection: 'close', 'content-length': 12 })).toEqual({
      'content-type': 'application/json',
      'content-length': '12',
    });
  });
});

describe('HTTP/2 from the app through the proxy', () => {
  it('negotiates h2 with an h2 client and http/1.1 with a client that offers only http/1.1', async () => {
    const alpn = (protocols: string[]): Promise<string | false | null> =>
      new Promise((done, reject) => {
        const s = tlsConnect({ host: '127.0.0.1', port: proxy.handle.capturePort, servername: OPENAI, ca: pki.caPem, ALPNProtocols: protocols }, () => {
          done(s.alpnProtocol);
          s.destroy();
        });
        s.on('error', reject);
      });
    expect(await alpn(['h2', 'http/1.1'])).toBe('h2');
    expect(await alpn(['http/1.1'])).toBe('http/1.1');
  });

  it('forwards a JSON request over HTTP/1.1 upstream and returns the answer byte for byte', async () => {
    const answer = Buffer.from('{"id":"chatcmpl-1","choices":[{"message":{"content":"héllo"}}],"usage":{"total_tokens":7}}');
    handler = (_req, res) => {
      // node:https adds Connection/Keep-Alive; HTTP/2 must not see them (node:http2 throws on them).
      res.writeHead(200, [['Content-Type', 'application/json'], ['Content-Length', String(answer.length)], ['Set-Cookie', 'a=1'], ['Set-Cookie', 'b=2'], ['X-Request-Id', 'r1']]);
      res.end(answer);
    };
    const before = await requestsTotal(proxy, { provider: 'openai', decision: 'allow', code: '200' });
    const body = '{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}';
    const s = await session(proxy.handle.capturePort);
    const n = seen.length;
    const r = await request(s, { 'content-type': 'application/json', authorization: 'Bearer sk-test', cookie: 'c=1' }, body);
    s.close();
    expect(r.status).toBe(200);
    expect(r.body.equals(answer)).toBe(true);
    expect(r.headers['content-length']).toBe(String(answer.length));
    expect(r.headers['set-cookie']).toEqual(['a=1', 'b=2']);
    expect(r.headers['x-request-id']).toBe('r1');
    expect(r.headers.connection).toBeUndefined();
    expect(r.headers['keep-alive']).toBeUndefined();

    expect(seen.length).toBe(n + 1);
    const up = seen[n]!;
    expect(up.method).toBe('POST');
    expect(up.url).toBe('/v1/chat/completions');
    expect(up.body.toString()).toBe(body);
    const names = up.rawHeaders.filter((_, i) => i % 2 === 0).map((h) => h.toLowerCase());
    expect(names.filter((h) => h.startsWith(':'))).toEqual([]);
    const header = (name: string): string | undefined => up.rawHeaders[up.rawHeaders.findIndex((h, i) => i % 2 === 0 && h.toLowerCase() === name) + 1];
    expect(header('host')).toBe(`${OPENAI}:443`); // node's http2 client puts the port in :authority; sent on as the app named it
    expect(header('authorization')).toBe('Bearer sk-test');
    expect(header('content-length')).toBe(String(Buffer.byteLength(body)));
    expect(header('cookie')).toBe('c=1');

    expect(await requestsTotal(proxy, { provider: 'openai', decision: 'allow', code: '200' })).toBe(before + 1);
    const line = cap.lines.filter((l) => l.msg === 'ai request').at(-1);
    expect(line).toMatchObject({ host: OPENAI, provider: 'openai', method: 'POST', path: '/v1/chat/completions', status: 200, decision: 'allow', reqBytes: Buffer.byteLength(body), resBytes: answer.length });
    expect(cap.raw.join('\n')).not.toContain('sk-test');
  });

  it('streams SSE to the app as it arrives: the second event is only sent after the app has read the first', async () => {
    let appGotFirst!: () => void;
    const firstArrived = new Promise<void>((r) => (appGotFirst = r));
    const order: string[] = [];
    handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.write('data: {"delta":"one"}\n\n');
      order.push('upstream sent 1');
      void firstArrived.then(() => {
        order.push('upstream sent 2');
        res.end('data: {"delta":"two"}\n\ndata: [DONE]\n\n');
      });
    };
    const s = await session(proxy.handle.capturePort);
    const st = s.request({ ':method': 'POST', ':path': '/v1/chat/completions', 'content-type': 'application/json' });
    st.end('{"stream":true}');
    const chunks: string[] = [];
    let status = 0;
    st.on('response', (h) => (status = Number(h[':status'])));
    st.on('data', (c: Buffer) => {
      if (chunks.length === 0) {
        order.push('app got 1');
        appGotFirst();
      }
      chunks.push(c.toString());
    });
    await new Promise<void>((r, j) => {
      st.on('end', r);
      st.on('error', j);
    });
    s.close();
    expect(status).toBe(200);
    expect(order).toEqual(['upstream sent 1', 'app got 1', 'upstream sent 2']);
    expect(chunks.join('')).toBe('data: {"delta":"one"}\n\ndata: {"delta":"two"}\n\ndata: [DONE]\n\n');
  });

  it('answers 421 in the provider\'s shape when :authority is not the TLS server name; nothing is forwarded', async () => {
    const s = await session(proxy.handle.capturePort);
    const n = seen.length;
    const r = await request(s, { ':authority': 'api.anthropic.com' }, '{}');
    // The same session stays usable for a request that does belong to it.
    handler = (_req, res) => res.end('{"ok":true}');
    const ok = await request(s, {}, '{}');
    s.close();
    expect(r.status).toBe(421);
    expect(r.headers['content-type']).toContain('application/json');
    const err = JSON.parse(r.body.toString()) as { error: { message: string } };
    expect(err.error.message).toContain(`does not match the TLS server name (${OPENAI})`);
    expect(ok.status).toBe(200);
    expect(seen.length).toBe(n + 1);
  });

  // node:http2 does this itself once the response ends (RFC 9113 §8.1); pinned because the 421/413 paths rely on it.
  it('an answer sent before the upload ended closes that stream with RST_STREAM NO_ERROR; the session lives on', async () => {
    const s = await session(proxy.handle.capturePort);
    const st = s.request({ ':method': 'POST', ':path': '/v1/chat/completions', ':authority': 'api.anthropic.com' });
    st.write('{"partial":'); // never ended by the app
    let status = 0;
    st.on('response', (h) => (status = Number(h[':status'])));
    st.resume();
    const rstCode = await new Promise<number>((r) => st.once('close', () => r(st.rstCode ?? -1)));
    handler = (_req, res) => res.end('{"ok":true}');
    const ok = await request(s, {}, '{}');
    s.close();
    expect(status).toBe(421);
    expect(rstCode).toBe(0); // NGHTTP2_NO_ERROR
    expect(ok.status).toBe(200);
  });

  it('answers 413 in the provider\'s shape for a body over the limit, declared or streamed, and resets only that stream', async () => {
    const s = await session(proxy.handle.capturePort);
    const n = seen.length;
    const declared = await request(s, { 'content-length': '5000' }, Buffer.alloc(5000, 'a'));
    // No content-length: the limit is found while reading.
    const st = s.request({ ':method': 'POST', ':path': '/v1/chat/completions' });
    const streamedReply = reply(st);
    st.write(Buffer.alloc(800, 'b'));
    st.write(Buffer.alloc(800, 'c'), () => st.end(Buffer.alloc(800, 'd')));
    const streamed = await streamedReply;
    handler = (_req, res) => res.end('{"ok":true}');
    const ok = await request(s, {}, '{}');
    s.close();
    for (const r of [declared, streamed]) {
      expect(r.status).toBe(413);
      expect((JSON.parse(r.body.toString()) as { error: { message: string } }).error.message).toContain('larger than the proxy limit of 1024 bytes');
    }
    expect(ok.status).toBe(200);
    expect(seen.length).toBe(n + 1);
  });

  it('carries several concurrent streams on one session, each with its own answer', async () => {
    const held: { id: string; res: ServerResponse }[] = [];
    let allArrived!: () => void;
    const arrived = new Promise<void>((r) => (allArrived = r));
    const N = 5;
    handler = (_req, res, body) => {
      held.push({ id: (JSON.parse(body.toString()) as { id: string }).id, res });
      if (held.length === N) allArrived();
    };
    const before = metricValue(await metricsText(proxy.handle), 'aigress_connections_total', { route: 'mediated' });
    const s = await session(proxy.handle.capturePort);
    const replies = Array.from({ length: N }, (_, i) => request(s, { 'content-type': 'application/json' }, JSON.stringify({ id: `r${i}` })));
    // The provider holds every answer until all five requests are in: they cannot have been serialized.
    await arrived;
    for (const h of held.reverse()) h.res.end(JSON.stringify({ echo: h.id }));
    const got = await Promise.all(replies);
    s.close();
    expect(got.map((r) => r.status)).toEqual(Array(N).fill(200));
    expect(got.map((r) => (JSON.parse(r.body.toString()) as { echo: string }).echo)).toEqual(['r0', 'r1', 'r2', 'r3', 'r4']);
    expect(metricValue(await metricsText(proxy.handle), 'aigress_connections_total', { route: 'mediated' })).toBe(before + 1);
  });

  it('keeps serving HTTP/1.1 clients on the same listener', async () => {
    handler = (_req, res) => res.end('{"via":"h1"}');
    const r = await callTls(proxy.handle.capturePort, OPENAI, pki.caPem, { body: '{}' });
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe('{"via":"h1"}');
  });
});

describe('HTTP/2 and the pipeline', () => {
  it('a deny from a request processor is answered in the provider\'s shape with its headers; nothing is forwarded', async () => {
    const deny: Pipeline = pipelineOf([
      {
        name: 'budget',
        type: 'test',
        phase: 'admit',
        onRequest: () => ({ action: 'deny', kind: 'budget', status: 429, reason: 'test', message: 'aigress: token budget exhausted', headers: { 'retry-after': '7' } }),
      },
    ]);
    const p = await startTestProxy(pki, { resolve, buildPipeline: () => deny });
    try {
      await p.handle.ready;
      const n = seen.length;
      const s = await session(p.handle.capturePort);
      const r = await request(s, { 'content-type': 'application/json' }, '{"model":"gpt-4o"}');
      s.close();
      expect(r.status).toBe(429);
      expect(r.headers['retry-after']).toBe('7');
      expect((JSON.parse(r.body.toString()) as { error: { message: string } }).error.message).toBe('aigress: token budget exhausted');
      expect(seen.length).toBe(n);
      expect(await requestsTotal(p, { provider: 'openai', decision: 'deny', code: '429' })).toBe(1);
    } finally {
      await p.handle.close();
    }
  });
});

describe('HTTP/2 and drain', () => {
  it('sends GOAWAY, lets the open stream finish, refuses new streams, then stops', async () => {
    const p = await startTestProxy(pki, { resolve, drainTimeoutMs: 10_000 });
    await p.handle.ready;
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let upstreamGot!: () => void;
    const inUpstream = new Promise<void>((r) => (upstreamGot = r));
    handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: 1\n\n');
      upstreamGot();
      void released.then(() => res.end('data: 2\n\n'));
    };
    const s = await session(p.handle.capturePort);
    const goaway = new Promise<number>((r) => s.once('goaway', (code: number) => r(code)));
    const inflight = request(s, {}, '{"stream":true}');
    await inUpstream;
    let drained = false;
    const draining = p.handle.drain().then(() => (drained = true));
    expect(await goaway).toBe(0); // NO_ERROR: a graceful GOAWAY
    // After GOAWAY the client may not open new streams on this session.
    // Node 20 throws at request(); Node 24 returns a stream that fails with ERR_HTTP2_GOAWAY_SESSION (or is
    // closed with REFUSED_STREAM). Either way the stream is refused, never answered.
    const refused = await new Promise<string>((resolveRefusal) => {
      try {
        const late = s.request({ ':method': 'POST', ':path': '/v1/chat/completions' });
        late.on('error', (err: NodeJS.ErrnoException) => resolveRefusal(`${err.code ?? ''} ${err.message}`));
        late.once('response', () => resolveRefusal('answered'));
      } catch (err) {
        resolveRefusal((err as Error).message);
      }
    });
    expect(refused).toMatch(/GOAWAY|closed|destroyed/i);
    expect(drained).toBe(false);
    release();
    const r = await inflight;
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe('data: 1\n\ndata: 2\n\n');
    await draining;
    expect(await requestsTotal(p, { provider: 'openai', decision: 'allow', code: '200' })).toBe(1);
  });
});
