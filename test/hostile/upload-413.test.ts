import type { Duplex } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestPki, startTestProxy, type TestPki, type TestProxy } from '../unit/proxy/support.js';
import { type CountingProvider, countingProvider, h2Result, h2Session, tcpTo, tlsTo } from './support.js';

// An upload over the body limit must get a 413 the app can read. Clients such as Python's requests write the
// whole body before they read anything, so an answer is lost if the proxy closes (a reset) while body bytes
// are still arriving: with `Connection: close`, 11 of 20 uploads of 20–100 MB got EPIPE instead of the 413.

const OPENAI = 'api.openai.com';
const LIMIT = 1024 * 1024;
let pki: TestPki;
let proxy: TestProxy;
let provider: CountingProvider;

beforeAll(async () => {
  pki = await createTestPki();
  provider = await countingProvider(pki, OPENAI);
  proxy = await startTestProxy(pki, { maxBodyBytes: LIMIT, resolve: { [OPENAI]: { host: '127.0.0.1', port: provider.port } } });
  await proxy.handle.ready;
});
afterAll(async () => {
  await proxy.handle.close();
  await provider.close();
});

/** Writes head and body completely, reading nothing meanwhile (as requests does), then reads the answer. */
function uploadThenRead(socket: Duplex, head: string, bytes: number, chunked: boolean): Promise<{ text: string; writeError?: string }> {
  return new Promise((resolve) => {
    socket.pause();
    let writeError: string | undefined;
    const chunks: Buffer[] = [];
    socket.on('error', (e: NodeJS.ErrnoException) => (writeError ??= e.code));
    socket.on('close', () => resolve({ text: Buffer.concat(chunks).toString('latin1'), writeError }));
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.write(head);
    const piece = Buffer.alloc(256 * 1024, 0x61);
    let left = bytes;
    const pump = (): void => {
      while (left > 0 && !socket.destroyed) {
        const n = Math.min(piece.length, left);
        left -= n;
        const data = chunked ? Buffer.concat([Buffer.from(`${n.toString(16)}\r\n`), piece.subarray(0, n), Buffer.from('\r\n')]) : piece.subarray(0, n);
        const more = socket.write(left === 0 && chunked ? Buffer.concat([data, Buffer.from('0\r\n\r\n')]) : data);
        if (!more) {
          socket.once('drain', pump);
          return;
        }
      }
      if (left === 0) socket.resume(); // body written: now read, as the client would
    };
    pump();
  });
}

// The 20 tries: 20–100 MB, sized and chunked, over TLS and plain HTTP.
const tries = [20e6, 40e6, 60e6, 80e6, 100e6].flatMap((bytes) =>
  (['TLS', 'plain'] as const).flatMap((transport) => [false, true].map((chunked) => ({ bytes, transport, chunked }))),
);

describe('413 for an oversized upload', () => {
  it.each(tries)('Connection: close, $bytes bytes over $transport (chunked: $chunked): the app reads the 413', async ({ bytes, transport, chunked }) => {
    const before = provider.reached;
    const framing = chunked ? 'transfer-encoding: chunked' : `content-length: ${bytes}`;
    const head = `POST /v1/chat/completions HTTP/1.1\r\nHost: ${OPENAI}\r\ncontent-type: application/json\r\nconnection: close\r\n${framing}\r\n\r\n`;
    const socket = transport === 'TLS' ? await tlsTo(proxy.handle.capturePort, OPENAI, pki.caPem) : await tcpTo(proxy.handle.capturePort);
    const { text } = await uploadThenRead(socket, head, bytes, chunked);
    expect(text).toMatch(/^HTTP\/1\.1 413 /);
    expect(text).toMatch(/larger than the proxy limit/);
    expect(provider.reached).toBe(before);
  }, 60_000);

  it('HTTP/2: a 100 MB upload gets its 413 on the stream; the session still serves', async () => {
    const s = await h2Session(proxy.handle.capturePort, OPENAI, pki.caPem);
    const before = provider.reached;
    const st = s.request({ ':method': 'POST', ':path': '/v1/chat/completions', 'content-type': 'application/json' });
    const result = h2Result(st);
    const piece = Buffer.alloc(256 * 1024, 0x61);
    let left = 100e6;
    const pump = (): void => {
      while (left > 0 && !st.destroyed && !st.closed) {
        left -= piece.length;
        if (!st.write(piece)) {
          st.once('drain', pump);
          return;
        }
      }
      if (!st.destroyed && !st.closed) st.end();
    };
    st.on('error', () => undefined);
    pump();
    const r = await result;
    expect(r.status).toBe(413);
    expect(r.body).toMatch(/larger than the proxy limit/);
    expect(provider.reached).toBe(before);
    const ok = await h2Result(s.request({ ':method': 'GET', ':path': '/v1/models' }));
    expect(ok.status).toBe(200);
    s.close();
  }, 60_000);
});
