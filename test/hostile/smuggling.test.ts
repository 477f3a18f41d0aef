import { createServer, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestPki, fakeUpstream, startTestProxy, type TestPki, type TestProxy } from '../unit/proxy/support.js';
import { FLAG, FRAME, frame, hpack, RawH2 } from './h2-raw.js';
import { exchange, tcpTo, tlsTo } from './support.js';

// Request smuggling and misdirection from the app side: every ambiguous framing is refused with a readable 400
// before anything reaches a provider, what is forwarded is framed by the proxy (never the app's bytes), and
// nothing goes anywhere but the host the connection was routed on (the SNI's, or the first Host of plain HTTP).

const OPENAI = 'api.openai.com';
const ANTHROPIC = 'api.anthropic.com';
const ELSEWHERE = 'evil.example';

interface Seen {
  host: string | undefined;
  method: string;
  url: string;
  rawHeaders: string[];
  body: string;
}

let pki: TestPki;
let proxy: TestProxy;
/** Every request each fake provider received. */
const seen: Record<string, Seen[]> = { [OPENAI]: [], [ANTHROPIC]: [] };
/** Connections that reached the pass-through sink (a host outside the policy). */
let sunk = 0;
let sink: Server;
const closers: (() => Promise<void>)[] = [];

beforeAll(async () => {
  pki = await createTestPki();
  const resolve: Record<string, { host: string; port: number }> = {};
  for (const host of [OPENAI, ANTHROPIC]) {
    const up = await fakeUpstream(pki, host, (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        seen[host]!.push({ host: req.headers.host, method: req.method ?? '', url: req.url ?? '', rawHeaders: req.rawHeaders, body: Buffer.concat(chunks).toString('latin1') });
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ provider: host }));
      });
    });
    closers.push(up.close);
    resolve[host] = { host: '127.0.0.1', port: up.port };
  }
  sink = createServer((s) => {
    sunk++;
    s.destroy();
  });
  await new Promise<void>((r) => sink.listen(0, '127.0.0.1', r));
  resolve[ELSEWHERE] = { host: '127.0.0.1', port: (sink.address() as { port: number }).port };
  proxy = await startTestProxy(pki, { resolve });
  await proxy.handle.ready;
});
afterAll(async () => {
  await proxy.handle.close();
  for (const c of closers) await c();
  sink.close();
});

const total = (): number => seen[OPENAI]!.length + seen[ANTHROPIC]!.length + sunk;
const tls = (): ReturnType<typeof tlsTo> => tlsTo(proxy.handle.capturePort, OPENAI, pki.caPem);
/** A request head from lines (CRLF-joined, with the blank line), then `body` as is. */
const raw = (lines: string[], body = ''): string => `${lines.join('\r\n')}\r\n\r\n${body}`;
const post = (extra: string[], body = ''): string => raw(['POST /v1/chat/completions HTTP/1.1', `Host: ${OPENAI}`, 'content-type: application/json', ...extra], body);

/** How many of the responses in `text` have each status, in order. */
const statuses = (text: string): number[] => [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));

describe('ambiguous framing → 400, nothing forwarded', () => {
  const cases: [string, string][] = [
    ['two Content-Length headers that differ', post(['content-length: 2', 'content-length: 12'], '{}GET / HTTP/1.1\r\n')],
    ['two equal Content-Length headers', post(['content-length: 2', 'content-length: 2'], '{}')],
    ['a Content-Length list', post(['content-length: 2, 2'], '{}')],
    ['a signed Content-Length', post(['content-length: +2'], '{}')],
    ['a hexadecimal Content-Length', post(['content-length: 0x2'], '{}')],
    ['Content-Length and Transfer-Encoding: chunked', post(['content-length: 4', 'transfer-encoding: chunked'], '2\r\n{}\r\n0\r\n\r\n')],
    ['Transfer-Encoding: chunked, gzip (chunked not last)', post(['transfer-encoding: chunked, gzip'], '2\r\n{}\r\n0\r\n\r\n')],
    ['Transfer-Encoding: gzip (no chunked)', post(['transfer-encoding: gzip'], '{}')],
    ['Transfer-Encoding: identity', post(['transfer-encoding: identity'], '{}')],
    ['Transfer-Encoding: xchunked', post(['transfer-encoding: xchunked'], '2\r\n{}\r\n0\r\n\r\n')],
    ['Transfer-Encoding: chunked-false', post(['transfer-encoding: chunked-false'], '2\r\n{}\r\n0\r\n\r\n')],
    ['two Transfer-Encoding headers, the last not chunked', post(['transfer-encoding: chunked', 'transfer-encoding: identity'], '2\r\n{}\r\n0\r\n\r\n')],
    ['whitespace before the colon (Transfer-Encoding : chunked)', post(['transfer-encoding : chunked'], '2\r\n{}\r\n0\r\n\r\n')],
    ['a vertical tab in the name', post(['transfer-encoding\x0b: chunked'], '2\r\n{}\r\n0\r\n\r\n')],
    ['Transfer-Encoding folded onto the previous line (obs-fold)', post(['x-pad: a', ' transfer-encoding: chunked'], '2\r\n{}\r\n0\r\n\r\n')],
    ['obs-fold in a value', post(['content-length: 2', 'x-note: one', '\ttwo'], '{}')],
    ['a chunk size that overflows 64 bits', post(['transfer-encoding: chunked'], 'fffffffffffffffffff1\r\n{}\r\n0\r\n\r\n')],
    ['a negative chunk size', post(['transfer-encoding: chunked'], '-2\r\n{}\r\n0\r\n\r\n')],
    ['a chunk size with 0x', post(['transfer-encoding: chunked'], '0x2\r\n{}\r\n0\r\n\r\n')],
    ['a chunk longer than its size', post(['transfer-encoding: chunked'], '2\r\n{}xx\r\n0\r\n\r\n')],
    ['bare LF line endings in the head', ['POST /v1/chat/completions HTTP/1.1', `Host: ${OPENAI}`, 'content-length: 2', '', '{}'].join('\n')],
    ['a bare LF ending one header line', `POST /v1/chat/completions HTTP/1.1\r\nHost: ${OPENAI}\r\nx-a: b\ncontent-length: 2\r\n\r\n{}`],
    ['a bare CR inside a value', post(['content-length: 2', 'x-a: b\rc'], '{}')],
    ['bare LF after a chunk size', post(['transfer-encoding: chunked'], '2\n{}\r\n0\r\n\r\n')],
    ['a NUL in a header value', post(['content-length: 2', 'x-a: b\x00c'], '{}')],
    ['a NUL in a header name', post(['content-length: 2', 'x-\x00a: b'], '{}')],
    ['a space in the request target', raw(['GET /v1/models HTTP/1.1 x', `Host: ${OPENAI}`])],
    ['HTTP/1.1 without Host', raw(['GET /v1/models HTTP/1.1'])],
  ];

  it.each(cases)('TLS: %s', async (what, bytes) => {
    const before = total();
    const { text } = await exchange(await tls(), bytes);
    expect(statuses(text)).toEqual([400]);
    // Said in the provider's error shape, not an empty 400 (node:http itself answers a missing Host).
    if (!/without Host/.test(what)) expect(text).toMatch(/"message":"aigress: /);
    await new Promise((r) => setTimeout(r, 50)); // a forwarded request would have landed by now
    expect(total()).toBe(before);
  });

  // Plain HTTP goes through the routing peek first (it needs the Host); the same bytes must fare the same.
  it.each(cases.filter(([what]) => !/bare LF line endings|without Host/.test(what)))('plain HTTP: %s', async (_what, bytes) => {
    const before = total();
    const { text } = await exchange(await tcpTo(proxy.handle.capturePort), bytes);
    expect(statuses(text)).toEqual([400]);
    await new Promise((r) => setTimeout(r, 50));
    expect(total()).toBe(before);
  });
});

describe('a 1 MiB chunk extension', () => {
  // node:http refuses chunk extensions over 16 KiB (CVE-2024-22019); the app used to get a reset for it.
  it.each([
    ['TLS', true],
    ['plain HTTP', false],
  ])('%s: a readable 413 while the client is still sending, nothing forwarded', async (_what, overTls) => {
    const before = total();
    const socket = overTls ? await tls() : await tcpTo(proxy.handle.capturePort);
    const { text, reset } = await exchange(socket, post(['transfer-encoding: chunked'], `2;${'x'.repeat(1 << 20)}\r\n{}\r\n0\r\n\r\n`), 256 * 1024);
    expect(statuses(text)).toEqual([413]);
    expect(text).toMatch(/chunk extensions over 16 KiB/);
    expect(reset).toBe(false);
    expect(total()).toBe(before);
  });
});

describe('what is forwarded is framed by the proxy', () => {
  it('a chunked upload (TE written as CHUNKED, with a chunk extension and a trailer) reaches the provider sized, without the app\'s framing', async () => {
    seen[OPENAI]!.length = 0;
    const body = '2;ext=1\r\n{"\r\n5\r\na":1}\r\n0\r\nx-trailer: t\r\n\r\n';
    const { text } = await exchange(await tls(), post(['Transfer-Encoding: CHUNKED', 'connection: close, x-hop', 'x-hop: 1', 'te: trailers'], body));
    expect(statuses(text)).toEqual([200]);
    const got = seen[OPENAI]![0]!;
    expect(got.body).toBe('{"a":1}');
    const names = got.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
    expect(names).not.toContain('transfer-encoding');
    expect(names).not.toContain('x-hop'); // listed in Connection: hop-by-hop
    expect(names).not.toContain('te');
    expect(names).not.toContain('x-trailer');
    expect(got.rawHeaders[names.indexOf('content-length') * 2 + 1]).toBe('7');
  });

  it('bytes after a Content-Length body are the next request, checked like any other (not part of the first)', async () => {
    seen[OPENAI]!.length = 0;
    const smuggled = `GET /admin HTTP/1.1\r\nHost: ${ANTHROPIC}\r\n\r\n`;
    const before = seen[ANTHROPIC]!.length;
    const { text } = await exchange(await tls(), post(['content-length: 2'], `{}${smuggled}`));
    expect(statuses(text)).toEqual([200, 421]);
    expect(seen[OPENAI]!.map((s) => s.body)).toEqual(['{}']);
    expect(seen[ANTHROPIC]!.length).toBe(before);
  });
});

describe('only the routed host', () => {
  const get = (hostLine: string, target = '/v1/models'): string => raw([`GET ${target} HTTP/1.1`, hostLine, 'connection: close']);

  it.each([
    ['the same name in upper case', `Host: API.OPENAI.COM`, 200],
    ['the same name with a trailing dot', `Host: ${OPENAI}.`, 200],
    ['the same name with port 443', `Host: ${OPENAI}:443`, 200],
    ['another provider', `Host: ${ANTHROPIC}`, 421],
    ['another provider, upper case with a trailing dot', `Host: API.ANTHROPIC.COM.`, 421],
    ['a host outside the policy', `Host: ${ELSEWHERE}`, 421],
    ['a lookalike IDN (Cyrillic а), raw UTF-8', `Host: \u0430pi.openai.com`, 421],
    ['a punycode name', 'Host: xn--pi-7ld.openai.com', 421],
    ['an empty Host', 'Host: ', 421],
    ['an IP literal', 'Host: 127.0.0.1', 421],
    ['userinfo in Host', `Host: user@${OPENAI}`, 421],
  ])('SNI %s, %s: %d', async (_what, hostLine, status) => {
    const before = { o: seen[OPENAI]!.length, a: seen[ANTHROPIC]!.length, s: sunk };
    const { text } = await exchange(await tls(), Buffer.from(get(hostLine), 'utf8'));
    expect(statuses(text)).toEqual([status]);
    expect(seen[ANTHROPIC]!.length).toBe(before.a);
    expect(sunk).toBe(before.s);
    if (status === 200) {
      expect(seen[OPENAI]!.length).toBe(before.o + 1);
      expect(seen[OPENAI]!.at(-1)!.host).toMatch(/^api\.openai\.com(:443)?$/); // normalised: never as written
    } else expect(seen[OPENAI]!.length).toBe(before.o);
  });

  it.each([
    ['upper case', 'API.OPENAI.COM'],
    ['a trailing dot', `${OPENAI}.`],
  ])('an SNI in %s is the same host: Host %s matches it', async (_what, sni) => {
    const before = seen[OPENAI]!.length;
    const { text } = await exchange(await tlsTo(proxy.handle.capturePort, sni, pki.caPem), get(`Host: ${OPENAI}`));
    expect(statuses(text)).toEqual([200]);
    expect(seen[OPENAI]!.length).toBe(before + 1);
    const mismatch = await exchange(await tlsTo(proxy.handle.capturePort, sni, pki.caPem), get(`Host: ${ANTHROPIC}`));
    expect(statuses(mismatch.text)).toEqual([421]);
  });

  it.each([
    ['another provider', `https://${ANTHROPIC}/v1/models`, 421],
    ['a host outside the policy', `http://${ELSEWHERE}/`, 421],
    ['userinfo naming the routed host', `https://${OPENAI}@${ELSEWHERE}/`, 421],
    ['the routed host', `https://${OPENAI}/v1/models`, 200],
  ])('an absolute-form target naming %s: %d', async (_what, target, status) => {
    const before = { o: seen[OPENAI]!.length, a: seen[ANTHROPIC]!.length, s: sunk };
    const { text } = await exchange(await tls(), get(`Host: ${OPENAI}`, target));
    expect(statuses(text)).toEqual([status]);
    expect(seen[ANTHROPIC]!.length).toBe(before.a);
    expect(sunk).toBe(before.s);
    expect(seen[OPENAI]!.length).toBe(before.o + (status === 200 ? 1 : 0));
    if (status === 200) expect(seen[OPENAI]!.at(-1)!.url).toBe('/v1/models'); // origin-form upstream
  });

  // On TLS the HTTP server refuses the method (405); plain HTTP is refused at routing, before any server (403).
  it.each([
    ['TLS', true, 405],
    ['plain HTTP', false, 403],
  ])('%s: CONNECT is refused (%d), never tunnelled', async (_what, overTls, status) => {
    const before = total();
    for (const target of [`${ANTHROPIC}:443`, `${ELSEWHERE}:443`, `${OPENAI}:443`]) {
      const socket = overTls ? await tls() : await tcpTo(proxy.handle.capturePort);
      const { text } = await exchange(socket, raw([`CONNECT ${target} HTTP/1.1`, `Host: ${OPENAI}`], '\x16\x03\x01'));
      expect(statuses(text)).toEqual([status]);
    }
    await new Promise((r) => setTimeout(r, 50));
    expect(total()).toBe(before);
  });

  it.each([
    ['TLS', true],
    ['plain HTTP', false],
  ])('%s: pipelined requests naming another host on one connection are refused; the first is served', async (_what, overTls) => {
    const before = { o: seen[OPENAI]!.length, a: seen[ANTHROPIC]!.length, s: sunk };
    const socket = overTls ? await tls() : await tcpTo(proxy.handle.capturePort);
    const bytes =
      raw(['GET /v1/models HTTP/1.1', `Host: ${OPENAI}`]) +
      raw(['GET /v1/models HTTP/1.1', `Host: ${ANTHROPIC}`]) +
      raw(['GET /v1/models HTTP/1.1', `Host: ${ELSEWHERE}`]) +
      raw([`GET https://${ANTHROPIC}/v1/models HTTP/1.1`, `Host: ${OPENAI}`]) +
      raw(['GET /v1/models HTTP/1.1', `Host: ${OPENAI}`, 'connection: close']);
    const { text } = await exchange(socket, bytes);
    expect(statuses(text)).toEqual([200, 421, 421, 421, 200]);
    expect(seen[OPENAI]!.length).toBe(before.o + 2);
    expect(seen[ANTHROPIC]!.length).toBe(before.a);
    expect(sunk).toBe(before.s);
  });
});

describe('HTTP/2 framing the proxy must not pass on', () => {
  /** One request on a fresh raw session: a header block of `fields` and optional DATA; what came back. */
  async function h2Raw(fields: Buffer[], data?: string): Promise<{ answered: boolean; reset?: number; goaway?: number }> {
    const c = await RawH2.connect(proxy.handle.capturePort, OPENAI, pki.caPem);
    const block = Buffer.concat([hpack.literal(':method', 'POST'), hpack.ref(7), hpack.literal(':path', '/v1/chat/completions'), hpack.literal(':authority', OPENAI), ...fields]);
    c.socket.write(frame(FRAME.HEADERS, FLAG.END_HEADERS | (data === undefined ? FLAG.END_STREAM : 0), 1, block));
    if (data !== undefined) c.socket.write(frame(FRAME.DATA, FLAG.END_STREAM, 1, Buffer.from(data)));
    await c.closedWithin(300);
    const r = { answered: c.received.answered.has(1), ...(c.received.rst.has(1) && { reset: c.received.rst.get(1) }), ...(c.received.goaway && { goaway: c.received.goaway.code }) };
    c.close();
    return r;
  }

  it.each([
    ['a transfer-encoding field', [hpack.literal('transfer-encoding', 'chunked')], '2\r\n{}\r\n0\r\n\r\n'],
    ['a connection field', [hpack.literal('connection', 'keep-alive')], '{}'],
    ['content-length shorter than the DATA', [hpack.literal('content-length', '2')], '{"a":1}'],
    ['content-length longer than the DATA', [hpack.literal('content-length', '20')], '{}'],
    ['an upper-case field name', [hpack.literal('Content-Type', 'application/json')], '{}'],
    ['two :path pseudo-headers', [hpack.literal(':path', '/other')], '{}'],
  ])('%s: the stream is reset, nothing forwarded', async (_what, fields, data) => {
    const before = total();
    const r = await h2Raw(fields, data);
    expect(r.answered).toBe(false);
    expect(r.reset !== undefined || r.goaway !== undefined).toBe(true);
    await new Promise((res) => setTimeout(res, 50));
    expect(total()).toBe(before);
  });

  it('field values with CR LF or NUL are dropped by nghttp2 (RFC 9113 §8.2.1 leaves it that choice): nothing injected', async () => {
    seen[OPENAI]!.length = 0;
    const r = await h2Raw([hpack.literal('x-a', `b\r\nhost: ${ELSEWHERE}`), hpack.literal('x-b', 'c\u0000d'), hpack.literal('x-ok', '1')], '{}');
    expect(r.answered).toBe(true);
    const got = seen[OPENAI]![0]!;
    expect(got.host).toBe(OPENAI);
    const names = got.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
    expect(names).toContain('x-ok');
    expect(names).not.toContain('x-a');
    expect(names).not.toContain('x-b');
    expect(got.rawHeaders.join('\n')).not.toContain(ELSEWHERE);
    expect(sunk).toBe(0);
  });

  it('a well-formed request with DATA is forwarded with the proxy\'s own content-length', async () => {
    seen[OPENAI]!.length = 0;
    const r = await h2Raw([hpack.literal('content-type', 'application/json')], '{"a":1}');
    expect(r.answered).toBe(true);
    const got = seen[OPENAI]![0]!;
    expect(got.body).toBe('{"a":1}');
    const names = got.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
    expect(names).not.toContain('transfer-encoding');
    expect(got.rawHeaders[names.indexOf('content-length') * 2 + 1]).toBe('7');
  });
});
