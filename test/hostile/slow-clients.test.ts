import { createServer } from 'node:net';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callTls, createTestPki, startTestProxy, type TestPki, type TestProxy } from '../unit/proxy/support.js';
import { FLAG, FRAME, frame, hpack, RawH2, requestBlock } from './h2-raw.js';
import { type CountingProvider, countingProvider, h2Result, h2Session, tcpTo, tlsTo } from './support.js';

// Slow clients: a slowloris trickling its head, a body that stops arriving, a TLS handshake left half done. Each
// holds a connection (and, for a body, a buffer) until the documented timeout cuts it (--client-header-timeout,
// --client-body-timeout; short here), while other clients are served. Without the timeouts each of them was
// held until the socket idle timeout (the upstream timeout plus 10 s: over 5 minutes by default), or for good.
// An HTTP/2 header block trickled in CONTINUATION frames was held for as long as it kept coming: every frame
// restarted the session's 30 s idle timeout.

const OPENAI = 'api.openai.com';
const HEADER_MS = 1_000;
const BODY_MS = 1_000;
let pki: TestPki;
let proxy: TestProxy;
let provider: CountingProvider;

beforeAll(async () => {
  pki = await createTestPki();
  provider = await countingProvider(pki, OPENAI);
  proxy = await startTestProxy(pki, {
    clientHeaderTimeoutMs: HEADER_MS,
    clientBodyTimeoutMs: BODY_MS,
    peekTimeoutMs: HEADER_MS,
    resolve: { [OPENAI]: { host: '127.0.0.1', port: provider.port } },
  });
  await proxy.handle.ready;
});
afterAll(async () => {
  await proxy.handle.close();
  await provider.close();
});

/** Writes `first`, then one byte of `rest` every `everyMs` until the server closes; resolves with what it said. */
function trickle(socket: Duplex, first: string, rest: string, everyMs: number): Promise<{ text: string; sent: number }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let i = 0;
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => undefined);
    socket.write(first);
    const timer = setInterval(() => {
      if (socket.destroyed || !socket.writable) return;
      socket.write(rest[i % rest.length]!);
      i++;
    }, everyMs);
    socket.on('close', () => {
      clearInterval(timer);
      resolve({ text: Buffer.concat(chunks).toString('latin1'), sent: i });
    });
  });
}

const honest = async (): Promise<number> => (await callTls(proxy.handle.capturePort, OPENAI, pki.caPem, { method: 'GET', path: '/v1/models' })).status;

describe('a slowloris (header bytes trickled)', () => {
  it('TLS, HTTP/1.1: cut with a 408 after the header timeout, while an honest client is served', async () => {
    const before = provider.reached;
    const socket = await tlsTo(proxy.handle.capturePort, OPENAI, pki.caPem);
    // One byte of an endless header field every 100 ms: the socket is never idle.
    const slow = trickle(socket, `POST /v1/chat/completions HTTP/1.1\r\nHost: ${OPENAI}\r\nx-slow: `, 'abcdefgh', 100);
    expect(await honest()).toBe(200);
    const { text, sent } = await slow;
    expect(text).toMatch(/^HTTP\/1\.1 408 /);
    expect(text).toMatch(/did not arrive in time/);
    expect(sent).toBeGreaterThan(3); // it was trickling, not idle, when it was cut
    expect(provider.reached - before).toBe(1); // the honest one only
  });

  it('plain HTTP: closed at the routing deadline (the head never completes, so it is never routed)', async () => {
    const before = provider.reached;
    const { text } = await trickle(await tcpTo(proxy.handle.capturePort), `GET /v1/models HTTP/1.1\r\nHost: ${OPENAI}\r\nx-slow: `, 'abcdefgh', 100);
    expect(text).toBe('');
    expect(provider.reached).toBe(before);
  });
});

describe('an HTTP/2 request header block trickled', () => {
  const ENHANCE_YOUR_CALM = 0xb;

  /** Writes `pieces` one every `everyMs` until all are written or the server closes; resolves with how many went. */
  async function trickleRaw(c: RawH2, pieces: Buffer[], everyMs: number): Promise<number> {
    let sent = 0;
    while (sent < pieces.length && c.isOpen) {
      c.socket.write(pieces[sent]!);
      sent++;
      if (await c.closedWithin(everyMs)) break;
    }
    return sent;
  }

  const slowField = (i: number): Buffer => hpack.literal(`x-slow-${i}`, 'abcdefgh');

  it.each([
    {
      // Seven CONTINUATION frames (nghttp2 ends a session at the eighth), one every 350 ms: each whole frame
      // restarts the session idle timeout, and in all they take over twice the header timeout.
      how: 'HEADERS without END_HEADERS, then CONTINUATION frames one at a time',
      pieces: (): Buffer[] => [
        frame(FRAME.HEADERS, FLAG.END_STREAM, 1, requestBlock(OPENAI)),
        ...[0, 1, 2, 3, 4, 5, 6].map((i) => frame(FRAME.CONTINUATION, i === 6 ? FLAG.END_HEADERS : 0, 1, slowField(i))),
      ],
      everyMs: 350,
    },
    {
      // One HEADERS frame written a byte every 100 ms (over 10 s): no CONTINUATION at all, so no cap of nghttp2's.
      how: 'one HEADERS frame a byte at a time',
      pieces: (): Buffer[] => [
        ...frame(FRAME.HEADERS, FLAG.END_STREAM | FLAG.END_HEADERS, 1, Buffer.concat([requestBlock(OPENAI), ...[0, 1, 2, 3].map(slowField)])),
      ].map((b) => Buffer.from([b])),
      everyMs: 100,
    },
  ])('$how: the session is ended after the header timeout, nothing forwarded; an honest session is served', async ({ pieces, everyMs }) => {
    const before = provider.reached;
    const c = await RawH2.connect(proxy.handle.capturePort, OPENAI, pki.caPem);
    // SETTINGS exchanged first: RawH2's ACK of the proxy's SETTINGS inside the block would be a protocol error.
    while (c.received.settingsAcks === 0 && c.isOpen) await c.closedWithin(10);
    const all = pieces();
    const slow = trickleRaw(c, all, everyMs);
    const s = await h2Session(proxy.handle.capturePort, OPENAI, pki.caPem);
    try {
      expect((await h2Result(s.request({ ':method': 'GET', ':path': '/v1/models' }))).status).toBe(200);
    } finally {
      s.close();
    }
    const sent = await slow;
    await c.closed;
    expect(sent).toBeLessThan(all.length); // cut while still trickling…
    expect(sent).toBeGreaterThan(2); // …not idle
    expect(c.received.goaway?.code).toBe(ENHANCE_YOUR_CALM);
    expect(c.received.answered.has(1)).toBe(false);
    expect(provider.reached - before).toBe(1); // the honest one only
  });

  it('an honest session idle between requests for longer than the header timeout is not cut', async () => {
    const s = await h2Session(proxy.handle.capturePort, OPENAI, pki.caPem);
    try {
      expect((await h2Result(s.request({ ':method': 'GET', ':path': '/v1/models' }))).status).toBe(200);
      await new Promise((r) => setTimeout(r, 2.5 * HEADER_MS));
      expect(s.closed || s.destroyed).toBe(false);
      expect((await h2Result(s.request({ ':method': 'GET', ':path': '/v1/models' }))).status).toBe(200);
    } finally {
      s.close();
    }
  });
});

describe('a stalled request body', () => {
  it('HTTP/1.1: 408 after the body timeout, nothing forwarded; an honest client is served meanwhile', async () => {
    const before = provider.reached;
    const socket = await tlsTo(proxy.handle.capturePort, OPENAI, pki.caPem);
    const answer = new Promise<string>((resolve) => {
      const chunks: Buffer[] = [];
      socket.on('data', (c: Buffer) => chunks.push(c));
      socket.on('error', () => undefined);
      socket.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
    });
    socket.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: ${OPENAI}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"model":`);
    expect(await honest()).toBe(200);
    const text = await answer;
    expect(text).toMatch(/^HTTP\/1\.1 408 /);
    expect(text).toMatch(/request body paused for more than 1000 ms/);
    expect(text).toMatch(/"message"/); // in the provider's error shape
    expect(provider.reached - before).toBe(1);
  });

  it('HTTP/1.1: a body that is slow but keeps coming (a pause shorter than the timeout) is forwarded', async () => {
    const before = provider.reached;
    const body = '{"model":"gpt-4o","messages":[]}';
    const socket = await tlsTo(proxy.handle.capturePort, OPENAI, pki.caPem);
    const done = new Promise<string>((resolve) => {
      let text = '';
      socket.on('data', (c: Buffer) => {
        text += c.toString('latin1');
        if (/\r\n\r\n\{\}$/.test(text)) resolve(text);
      });
      socket.on('close', () => resolve(text));
    });
    socket.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: ${OPENAI}\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n`);
    // Eight pieces, BODY_MS / 4 apart: twice the body timeout in all, never a pause as long as it.
    const step = Math.ceil(body.length / 8);
    for (let i = 0; i < body.length; i += step) {
      await new Promise((r) => setTimeout(r, BODY_MS / 4));
      socket.write(body.slice(i, i + step));
    }
    expect(await done).toMatch(/^HTTP\/1\.1 200 /);
    socket.destroy();
    expect(provider.reached - before).toBe(1);
  });

  it('HTTP/2: the stalled stream gets 408 although PINGs keep the session alive; the same session still serves', async () => {
    const before = provider.reached;
    const s = await h2Session(proxy.handle.capturePort, OPENAI, pki.caPem);
    const pinger = setInterval(() => s.ping(() => undefined), 200);
    try {
      const st = s.request({ ':method': 'POST', ':path': '/v1/chat/completions', 'content-type': 'application/json' }, { endStream: false });
      st.write('{"model":');
      const stalled = await h2Result(st);
      expect(stalled.status).toBe(408);
      expect(stalled.body).toMatch(/request body paused/);
      expect(provider.reached).toBe(before);
      const ok = await h2Result(s.request({ ':method': 'GET', ':path': '/v1/models' }));
      expect(ok.status).toBe(200);
    } finally {
      clearInterval(pinger);
      s.close();
    }
  });
});

/** A real ClientHello for `servername`, as Node's TLS client sends it. */
async function clientHello(servername: string): Promise<Buffer> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const hello = new Promise<Buffer>((resolve) =>
    server.once('connection', (s) =>
      s.once('data', (d: Buffer) => {
        resolve(d);
        s.destroy();
      }),
    ),
  );
  const c = tlsConnect({ host: '127.0.0.1', port: (server.address() as { port: number }).port, servername });
  c.on('error', () => undefined);
  const raw = await hello;
  c.destroy();
  server.close();
  return raw;
}

describe('a TLS handshake left half done', () => {
  it('a ClientHello and then silence: closed after the header timeout, honest clients served', async () => {
    const socket = await tcpTo(proxy.handle.capturePort);
    const closed = new Promise<number>((resolve) => {
      let got = 0;
      socket.on('data', (c: Buffer) => (got += c.length));
      socket.on('error', () => undefined);
      socket.on('close', () => resolve(got));
    });
    socket.write(await clientHello(OPENAI)); // the proxy answers with its ServerHello, then waits for us
    expect(await honest()).toBe(200);
    expect(await closed).toBeGreaterThan(0); // it did get the ServerHello: the stall was ours
  });
});
