import { randomBytes } from 'node:crypto';
import { createServer, type AddressInfo } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { beforeAll, describe, expect, it } from 'vitest';
import { PEEK_LIMIT, normalizeHost, parseAuthority, peek, type PeekResult } from '../../../sidecar/proxy/peek.js';

/** The bytes a real Node TLS client sends first, captured from a loopback server that never answers. */
async function captureClientHello(opts: { servername?: string; ALPNProtocols?: string[] }): Promise<Buffer> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const got = new Promise<Buffer>((resolve) => {
    server.once('connection', (s) => {
      const chunks: Buffer[] = [];
      s.on('data', (c: Buffer) => {
        chunks.push(c);
        const all = Buffer.concat(chunks);
        // Wait for the whole first record (5-byte header + length).
        if (all.length >= 5 && all.length >= 5 + all.readUInt16BE(3)) {
          s.destroy();
          resolve(all);
        }
      });
    });
  });
  const client = tlsConnect({ host: '127.0.0.1', port, ...opts, rejectUnauthorized: false });
  client.on('error', () => undefined);
  const hello = await got;
  client.destroy();
  server.close();
  return hello;
}

/** Re-frames one handshake message into records of at most `size` payload bytes (what big hellos look like). */
function reframe(hello: Buffer, size: number): Buffer {
  const payload = hello.subarray(5, 5 + hello.readUInt16BE(3));
  const out: Buffer[] = [];
  for (let i = 0; i < payload.length; i += size) {
    const part = payload.subarray(i, i + size);
    const h = Buffer.from([0x16, 0x03, 0x01, 0, 0]);
    h.writeUInt16BE(part.length, 3);
    out.push(h, part);
  }
  return Buffer.concat(out);
}

describe('peek: TLS ClientHello', () => {
  let withSni: Buffer;
  let withoutSni: Buffer;
  let longName: Buffer;
  const LONG = `${'a'.repeat(60)}.${'b'.repeat(60)}.openai.azure.com`;

  beforeAll(async () => {
    withSni = await captureClientHello({ servername: 'API.OpenAI.com', ALPNProtocols: ['h2', 'http/1.1'] });
    withoutSni = await captureClientHello({}); // connecting to an IP: Node sends no server_name
    longName = await captureClientHello({ servername: LONG });
  });

  it('finds the SNI, lower-cased', () => {
    expect(peek(withSni)).toEqual({ kind: 'tls', sni: 'api.openai.com' });
    expect(peek(longName)).toEqual({ kind: 'tls', sni: LONG });
  });

  it('reports a hello without server_name as TLS with no SNI', () => {
    expect(peek(withoutSni)).toEqual({ kind: 'tls' });
  });

  it('asks for more at every split point, and decides only once the message is complete', () => {
    for (let cut = 0; cut < withSni.length; cut++) {
      expect(peek(withSni.subarray(0, cut)), `cut at ${cut}`).toEqual({ kind: 'more' });
    }
  });

  it('reassembles a hello spread over several records, at every split point', () => {
    const framed = reframe(withSni, 100);
    expect(framed.length).toBeGreaterThan(withSni.length); // really several records
    expect(peek(framed)).toEqual({ kind: 'tls', sni: 'api.openai.com' });
    let decidedAt = -1;
    for (let cut = 0; cut <= framed.length; cut++) {
      const r = peek(framed.subarray(0, cut));
      if (r.kind !== 'more') {
        decidedAt = cut;
        expect(r).toEqual({ kind: 'tls', sni: 'api.openai.com' });
        break;
      }
    }
    expect(decidedAt).toBe(framed.length);
  });

  it('rejects what is not a ClientHello', () => {
    const alert = Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28]);
    expect(peek(alert).kind).toBe('unknown');
    const serverHello = Buffer.from(withSni);
    serverHello[5] = 0x02;
    expect(peek(serverHello)).toMatchObject({ kind: 'unknown', reason: 'TLS handshake is not a ClientHello' });
    const badVersion = Buffer.from(withSni);
    badVersion[1] = 0x02;
    expect(peek(badVersion).kind).toBe('unknown');
    const zeroRecord = Buffer.from([0x16, 0x03, 0x01, 0x00, 0x00]);
    expect(peek(zeroRecord).kind).toBe('unknown');
  });

  it('rejects a handshake length beyond the peek limit instead of waiting for it', () => {
    const huge = Buffer.from([0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0xff, 0xff, 0xff]);
    expect(peek(huge)).toMatchObject({ kind: 'unknown', reason: 'ClientHello too long' });
  });

  it('treats an SNI that is not a host name as absent', () => {
    const evil = Buffer.from(withSni);
    const i = evil.indexOf('API.OpenAI.com', 0, 'latin1');
    expect(i).toBeGreaterThan(0);
    evil.write('API/OpenAI.com', i, 'latin1');
    expect(peek(evil)).toEqual({ kind: 'tls' });
  });

  it('never throws or hangs on corrupted hellos (every byte flipped, many random mutations)', () => {
    const results = new Set<string>();
    for (let i = 0; i < withSni.length; i++) {
      const b = Buffer.from(withSni);
      b[i] = b[i]! ^ 0xff;
      results.add(peek(b).kind);
    }
    for (let n = 0; n < 3000; n++) {
      const b = Buffer.from(withSni);
      for (let k = 0; k < 4; k++) b[Math.floor(Math.random() * b.length)] = Math.floor(Math.random() * 256);
      const r: PeekResult = peek(b.subarray(0, Math.floor(Math.random() * (b.length + 1))));
      expect(['more', 'tls', 'unknown']).toContain(r.kind);
      if (r.kind === 'tls' && r.sni !== undefined) expect(normalizeHost(r.sni)).toBe(r.sni);
    }
    expect(results.has('unknown')).toBe(true);
  });
});

describe('peek: plain HTTP', () => {
  const req = (s: string) => Buffer.from(s, 'latin1');

  it('reads method, target and Host (port split off, lower-cased)', () => {
    expect(peek(req('POST /v1/chat/completions HTTP/1.1\r\nContent-Type: a/b\r\nHOST: API.OpenAI.com:8080\r\n\r\n{"x":1}'))).toEqual({
      kind: 'http',
      request: { method: 'POST', target: '/v1/chat/completions', host: 'api.openai.com', port: 8080 },
    });
  });

  it('asks for more until the header block ends, at every split point', () => {
    const full = req('GET /x HTTP/1.1\r\nUser-Agent: t\r\nHost: example.org\r\n\r\n');
    for (let cut = 0; cut < full.length; cut++) expect(peek(full.subarray(0, cut)), `cut ${cut}`).toEqual({ kind: 'more' });
    expect(peek(full)).toMatchObject({ kind: 'http', request: { host: 'example.org' } });
  });

  it('takes the host of an absolute-form target and flags one that disagrees with Host', () => {
    expect(peek(req('GET http://api.openai.com/v1/models HTTP/1.1\r\nHost: api.openai.com\r\n\r\n'))).toMatchObject({
      kind: 'http',
      request: { host: 'api.openai.com' },
    });
    const r = peek(req('GET http://api.openai.com/v1/models HTTP/1.1\r\nHost: example.org\r\n\r\n'));
    expect(r).toMatchObject({ kind: 'http', request: { host: 'api.openai.com', conflictingTarget: 'api.openai.com' } });
  });

  it('has no host when neither Host nor the target names one', () => {
    expect(peek(req('GET / HTTP/1.0\r\n\r\n'))).toEqual({ kind: 'http', request: { method: 'GET', target: '/' } });
  });

  it('rejects duplicate or malformed Host, bad request lines, userinfo targets, HTTP/2 preface', () => {
    expect(peek(req('GET / HTTP/1.1\r\nHost: a.com\r\nHost: b.com\r\n\r\n')).kind).toBe('unknown');
    expect(peek(req('GET / HTTP/1.1\r\nHost: a b\r\n\r\n')).kind).toBe('unknown');
    expect(peek(req('GET / HTTP/1.1\r\nHost: a.com:99999\r\n\r\n')).kind).toBe('unknown');
    expect(peek(req('GET http://user@api.openai.com/ HTTP/1.1\r\nHost: api.openai.com\r\n\r\n')).kind).toBe('unknown');
    expect(peek(req('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')).kind).toBe('unknown');
    expect(peek(req('get / HTTP/1.1\r\n\r\n')).kind).toBe('unknown'); // lower-case: not a method (first byte not A-Z)
    expect(peek(req('GETTHEWHOLETHINGATONCE / HTTP/1.1')).kind).toBe('unknown'); // decided before the block ends
  });

  it('gives up on an endless header block at the peek limit', () => {
    const endless = Buffer.concat([req('GET / HTTP/1.1\r\n'), Buffer.alloc(PEEK_LIMIT, 'a')]);
    expect(peek(endless)).toMatchObject({ kind: 'unknown', reason: 'HTTP header block too long' });
  });
});

describe('peek: anything else', () => {
  it('classifies non-TLS, non-HTTP first bytes as unknown at once', () => {
    expect(peek(Buffer.from([0x00, 0x01, 0x02]))).toMatchObject({ kind: 'unknown' });
    expect(peek(Buffer.from('SSH-2.0-OpenSSH_9.6\r\n'))).toMatchObject({ kind: 'unknown' });
    expect(peek(Buffer.alloc(0))).toEqual({ kind: 'more' });
  });

  it('never throws on random garbage', () => {
    for (let n = 0; n < 5000; n++) {
      const b = randomBytes(1 + Math.floor(Math.random() * 600));
      if (n % 3 === 0) b[0] = 0x16;
      if (n % 3 === 1) b[0] = 0x47; // 'G'
      expect(['more', 'tls', 'http', 'unknown']).toContain(peek(b).kind);
    }
  });
});

describe('host names', () => {
  it('normalizes and validates', () => {
    expect(normalizeHost('Example.COM.')).toBe('example.com');
    expect(normalizeHost('a..b')).toBeUndefined();
    expect(normalizeHost('-x.com')).toBeUndefined();
    expect(normalizeHost('x'.repeat(254))).toBeUndefined();
    expect(normalizeHost('[::1]')).toBe('[::1]');
    expect(normalizeHost('evil.com\r\nX: y')).toBeUndefined();
  });
  it('splits authorities', () => {
    expect(parseAuthority('api.openai.com')).toEqual({ host: 'api.openai.com' });
    expect(parseAuthority('api.openai.com:443')).toEqual({ host: 'api.openai.com', port: 443 });
    expect(parseAuthority('[::1]:8080')).toEqual({ host: '[::1]', port: 8080 });
    expect(parseAuthority('::1')).toBeUndefined();
    expect(parseAuthority('host:0')).toBeUndefined();
    expect(parseAuthority('')).toBeUndefined();
  });
});
