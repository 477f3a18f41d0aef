import type { Duplex } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestPki, fakeUpstream, startTestProxy, type TestPki, type TestProxy } from '../unit/proxy/support.js';
import { tlsTo } from './support.js';

// An upload over the body limit must get a 413 the app can read. Clients such as Python's requests write the
// whole body before they read anything, so an answer is lost if the proxy closes (a reset) while body bytes
// are still arriving: with `Connection: close`, 11 of 20 uploads of 20–100 MB got EPIPE instead of the 413.

const OPENAI = 'api.openai.com';
const LIMIT = 1024 * 1024;
let pki: TestPki;
let proxy: TestProxy;
let reached = 0;
let closeUp: () => Promise<void>;

beforeAll(async () => {
  pki = await createTestPki();
  const up = await fakeUpstream(pki, OPENAI, (req, res) => {
    reached++;
    req.resume();
    req.on('end', () => res.end('{}'));
  });
  closeUp = up.close;
  proxy = await startTestProxy(pki, { maxBodyBytes: LIMIT, resolve: { [OPENAI]: { host: '127.0.0.1', port: up.port } } });
  await proxy.handle.ready;
});
afterAll(async () => {
  await proxy.handle.close();
  await closeUp();
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

describe('413 for an oversized upload', () => {
  it.each([
    ['20 MB with content-length', 20e6, false],
    ['20 MB with content-length (again)', 20e6, false],
    ['20 MB chunked', 20e6, true],
    ['100 MB with content-length', 100e6, false],
    ['100 MB chunked', 100e6, true],
  ])('Connection: close, %s: the app reads the 413', async (_what, bytes, chunked) => {
    const before = reached;
    const framing = chunked ? 'transfer-encoding: chunked' : `content-length: ${bytes}`;
    const head = `POST /v1/chat/completions HTTP/1.1\r\nHost: ${OPENAI}\r\ncontent-type: application/json\r\nconnection: close\r\n${framing}\r\n\r\n`;
    const { text } = await uploadThenRead(await tlsTo(proxy.handle.capturePort, OPENAI, pki.caPem), head, bytes, chunked);
    expect(text).toMatch(/^HTTP\/1\.1 413 /);
    expect(text).toMatch(/larger than the proxy limit/);
    expect(reached).toBe(before);
  }, 60_000);
});
