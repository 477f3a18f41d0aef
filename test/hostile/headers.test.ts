import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkHead, MAX_CONCURRENT_STREAMS, MAX_HEADER_FIELDS } from '../../sidecar/proxy/limits.js';
import { createTestPki, fakeUpstream, startTestProxy, type TestPki, type TestProxy } from '../unit/proxy/support.js';
import { exchange, h2Result, h2Session, tcpTo, tlsTo } from './support.js';

// Request heads an app should never send, or sends by mistake: each gets a readable answer (431 or 400) in the
// provider's error shape, the same limit on HTTP/1.1 and HTTP/2, and nothing reaches the provider.

const OPENAI = 'api.openai.com';
let pki: TestPki;
let proxy: TestProxy;
let forwarded = 0;
/** Requests to /stall wait here until the test releases them. */
const held: (() => void)[] = [];
let stalling = true;
let upstreamClose: () => Promise<void>;

beforeAll(async () => {
  pki = await createTestPki();
  const up = await fakeUpstream(pki, OPENAI, (req, res) => {
    forwarded++;
    req.resume();
    req.on('end', () => {
      const answer = (): void => void res.end(JSON.stringify({ host: req.headers.host }));
      if (req.url === '/stall' && stalling) held.push(answer);
      else answer();
    });
  });
  (up.server as unknown as { maxHeaderSize: number }).maxHeaderSize = 256 * 1024; // node's 16 KiB default would be the limit under test otherwise
  upstreamClose = up.close;
  proxy = await startTestProxy(pki, { resolve: { [OPENAI]: { host: '127.0.0.1', port: up.port } } });
  await proxy.handle.ready;
});
afterAll(async () => {
  await proxy.handle.close();
  await upstreamClose();
});

const head = (extra: string[]): string =>
  ['POST /v1/chat/completions HTTP/1.1', `Host: ${OPENAI}`, 'content-type: application/json', 'content-length: 2000000', ...extra, '', ''].join('\r\n');
const bigHeader = (bytes: number): string => `x-big: ${'a'.repeat(bytes)}`;
const manyHeaders = (n: number): string[] => Array.from({ length: n }, (_, i) => `x-h${i}: v`);

describe('HTTP/1.1', () => {
  it.each([
    ['TLS', 100 * 1024],
    ['TLS', 65 * 1024],
    ['plain', 100 * 1024],
  ])('%s: a %d-byte header block gets a readable 431 while the client is still sending, not a reset', async (kind, size) => {
    const before = forwarded;
    const socket = kind === 'TLS' ? await tlsTo(proxy.handle.capturePort, OPENAI, pki.caPem) : await tcpTo(proxy.handle.capturePort);
    const { text } = await exchange(socket, head([bigHeader(size)]), 256 * 1024);
    expect(text).toMatch(/^HTTP\/1\.1 431 /);
    expect(text).toMatch(/header block/);
    expect(forwarded).toBe(before);
  });

  it('a 17 KiB header block is under the limit: forwarded, not 400', async () => {
    const socket = await tlsTo(proxy.handle.capturePort, OPENAI, pki.caPem);
    const { text } = await exchange(socket, ['GET /v1/models HTTP/1.1', `Host: ${OPENAI}`, 'connection: close', bigHeader(17 * 1024), '', ''].join('\r\n'));
    expect(text).toMatch(/^HTTP\/1\.1 200 /);
  });

  it(`more than ${MAX_HEADER_FIELDS} header fields → 431 in the provider's shape; ${MAX_HEADER_FIELDS} pass`, async () => {
    const before = forwarded;
    const over = await exchange(await tlsTo(proxy.handle.capturePort, OPENAI, pki.caPem), head(manyHeaders(2_000)), 64 * 1024);
    expect(over.text).toMatch(/^HTTP\/1\.1 431 /);
    expect(over.text).toMatch(/"invalid_request_error"/); // OpenAI's error JSON
    expect(forwarded).toBe(before);
    // The limit counts every field, Host and the others of the request included.
    const fields = ['GET /v1/models HTTP/1.1', `Host: ${OPENAI}`, 'connection: close', ...manyHeaders(MAX_HEADER_FIELDS - 2), '', ''];
    const at = await exchange(await tlsTo(proxy.handle.capturePort, OPENAI, pki.caPem), fields.join('\r\n'));
    expect(at.text).toMatch(/^HTTP\/1\.1 200 /);
  });

  it('two Host headers → 400 (TLS), not a 502 from upstream', async () => {
    const before = forwarded;
    const { text } = await exchange(
      await tlsTo(proxy.handle.capturePort, OPENAI, pki.caPem),
      ['GET /v1/models HTTP/1.1', `Host: ${OPENAI}`, `Host: ${OPENAI}`, '', ''].join('\r\n'),
    );
    expect(text).toMatch(/^HTTP\/1\.1 400 /);
    expect(text).toMatch(/more than one Host/);
    expect(forwarded).toBe(before);
  });
});

describe('HTTP/2', () => {
  it(`advertises SETTINGS_MAX_CONCURRENT_STREAMS = ${MAX_CONCURRENT_STREAMS}`, async () => {
    const s = await h2Session(proxy.handle.capturePort, OPENAI, pki.caPem);
    expect(s.remoteSettings.maxConcurrentStreams).toBe(MAX_CONCURRENT_STREAMS);
    s.close();
  });

  it('an 80 KiB header list gets a readable 431 on its stream; the session still serves', async () => {
    const before = forwarded;
    const s = await h2Session(proxy.handle.capturePort, OPENAI, pki.caPem);
    const big = await h2Result(s.request({ ':method': 'POST', ':path': '/v1/chat/completions', 'x-big': 'a'.repeat(80 * 1024) }, { endStream: false }));
    expect(big.status).toBe(431);
    expect(big.body).toMatch(/header block/);
    expect(forwarded).toBe(before);
    const ok = await h2Result(s.request({ ':method': 'GET', ':path': '/v1/models' }));
    expect(ok.status).toBe(200);
    s.close();
  });

  it(`more than ${MAX_HEADER_FIELDS} header fields → 431, the same limit as HTTP/1.1; ${MAX_HEADER_FIELDS} pass`, async () => {
    const s = await h2Session(proxy.handle.capturePort, OPENAI, pki.caPem);
    const fields = (n: number): Record<string, string> => Object.fromEntries(Array.from({ length: n }, (_, i) => [`x-h${i}`, 'v']));
    const over = await h2Result(s.request({ ':method': 'GET', ':path': '/v1/models', ...fields(300) }));
    expect(over.status).toBe(431);
    const at = await h2Result(s.request({ ':method': 'GET', ':path': '/v1/models', ...fields(MAX_HEADER_FIELDS) }));
    expect(at.status).toBe(200);
    s.close();
  });

  it('two host fields → 400 (checked on the raw list; node:http2 clients cannot send them)', () => {
    expect(checkHead([':method', 'GET', ':authority', OPENAI, 'host', OPENAI, 'host', OPENAI])?.status).toBe(400);
    expect(checkHead([':method', 'GET', ':authority', OPENAI, 'host', OPENAI])).toBeUndefined();
  });

  it(`a stalled provider sees at most ${MAX_CONCURRENT_STREAMS} requests from one session; the rest wait their turn`, async () => {
    const s = await h2Session(proxy.handle.capturePort, OPENAI, pki.caPem);
    const n = MAX_CONCURRENT_STREAMS + 50;
    const results = Array.from({ length: n }, () => h2Result(s.request({ ':method': 'POST', ':path': '/stall' }, { endStream: true })));
    const deadline = Date.now() + 5_000;
    while (held.length < MAX_CONCURRENT_STREAMS && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 200)); // would more arrive?
    expect(held.length).toBe(MAX_CONCURRENT_STREAMS);
    stalling = false;
    for (const release of held.splice(0)) release();
    const done = await Promise.all(results);
    expect(done.every((r) => r.status === 200)).toBe(true);
    s.close();
  });
});
