// Pure parsers for the first bytes of a captured connection. Node cannot read SO_ORIGINAL_DST, so the proxy
// routes by name: the SNI of a TLS ClientHello, or the Host of a plain HTTP request. Every function here is
// total over hostile input: it answers `more` (wait for bytes), a result, or `unknown`; it never throws.

/** Bytes the proxy reads at most before it gives up classifying a connection. */
export const PEEK_LIMIT = 64 * 1024;

export type PeekResult =
  /** Not enough bytes yet to decide. */
  | { kind: 'more' }
  /** A TLS ClientHello; `sni` is absent when the client sent no usable server_name. */
  | { kind: 'tls'; sni?: string }
  | { kind: 'http'; request: HttpHead }
  /** Neither TLS nor HTTP, or malformed beyond use; `reason` is for the log line. */
  | {
      kind: 'unknown';
      reason: string;
      /** An HTTP request whose head is over PEEK_LIMIT: answered 431. */
      headTooLarge?: true;
      /** A complete HTTP/1.x head that does not parse (obs-fold, a bad request line): answered 400. */
      malformedHttp?: true;
    };

export interface HttpHead {
  method: string;
  /** The request target as sent (origin-form `/v1/x`, absolute-form `http://h/x`, `*`, or authority-form). */
  target: string;
  /** Lower-case host name from Host (or from an absolute-form target), without port; absent when neither says. */
  host?: string;
  /** Port named in Host, when one is. */
  port?: number;
  /** Host of an absolute-form target, when it names a different host than the Host header. */
  conflictingTarget?: string;
}

const MORE: PeekResult = { kind: 'more' };

function unknown(reason: string): PeekResult {
  return { kind: 'unknown', reason };
}

/** Classifies the first bytes of a connection. `buf` holds everything read so far. */
export function peek(buf: Buffer): PeekResult {
  if (buf.length === 0) return MORE;
  const first = buf[0]!;
  if (first === 0x16) return parseClientHello(buf);
  if (first >= 0x41 && first <= 0x5a) return parseHttpHead(buf); // A-Z: an HTTP method
  return unknown(`first byte 0x${first.toString(16).padStart(2, '0')} is neither TLS nor HTTP`);
}

// ---------------------------------------------------------------------------------------------------------
// TLS

const TLS_RECORD_MAX = 16_384 + 2_048; // plaintext limit plus the slack RFC 8446 allows for ciphertext
const HANDSHAKE_MAX = PEEK_LIMIT - 1_024;

/**
 * Finds the SNI in a ClientHello. The handshake message may span several records and several reads: the
 * records' payloads are concatenated until the whole message is there.
 */
export function parseClientHello(buf: Buffer): PeekResult {
  const hs: Buffer[] = [];
  let hsLen = 0;
  let need = -1; // total handshake message length once its header is known
  let off = 0;
  while (need < 0 || hsLen < need) {
    if (buf.length - off < 5) return buf.length >= PEEK_LIMIT ? unknown('TLS record too long') : MORE;
    if (buf[off] !== 0x16) return unknown('TLS record is not a handshake');
    if (buf[off + 1] !== 0x03) return unknown('TLS record version is not 3.x');
    const recLen = buf.readUInt16BE(off + 3);
    if (recLen === 0 || recLen > TLS_RECORD_MAX) return unknown('TLS record length out of range');
    const start = off + 5;
    const avail = Math.min(recLen, buf.length - start);
    hs.push(buf.subarray(start, start + avail));
    hsLen += avail;
    if (need < 0 && hsLen >= 4) {
      const head = hs.length === 1 ? hs[0]! : Buffer.concat(hs, hsLen);
      if (head[0] !== 0x01) return unknown('TLS handshake is not a ClientHello');
      need = 4 + ((head[1]! << 16) | (head[2]! << 8) | head[3]!);
      if (need > HANDSHAKE_MAX) return unknown('ClientHello too long');
    }
    if (avail < recLen) {
      // The record is not complete yet; it may still hold everything the message needs.
      if (need >= 0 && hsLen >= need) break;
      return MORE;
    }
    off = start + recLen;
  }
  const msg = hs.length === 1 ? hs[0]! : Buffer.concat(hs, hsLen);
  return readSni(msg.subarray(4, need));
}

/** Walks a ClientHello body (after the 4-byte handshake header) to the server_name extension. */
function readSni(b: Buffer): PeekResult {
  let p = 2 + 32; // client_version, random
  if (p + 1 > b.length) return unknown('ClientHello truncated');
  p += 1 + b[p]!; // session_id
  if (p + 2 > b.length) return unknown('ClientHello truncated');
  p += 2 + b.readUInt16BE(p); // cipher_suites
  if (p + 1 > b.length) return unknown('ClientHello truncated');
  p += 1 + b[p]!; // compression_methods
  if (p === b.length) return { kind: 'tls' }; // no extensions at all
  if (p + 2 > b.length) return unknown('ClientHello truncated');
  const extEnd = p + 2 + b.readUInt16BE(p);
  if (extEnd > b.length) return unknown('ClientHello extensions truncated');
  p += 2;
  while (p + 4 <= extEnd) {
    const type = b.readUInt16BE(p);
    const len = b.readUInt16BE(p + 2);
    p += 4;
    if (p + len > extEnd) return unknown('ClientHello extension truncated');
    if (type === 0x0000) return serverName(b.subarray(p, p + len));
    p += len;
  }
  return { kind: 'tls' };
}

function serverName(ext: Buffer): PeekResult {
  if (ext.length < 2) return unknown('server_name extension truncated');
  const listEnd = Math.min(2 + ext.readUInt16BE(0), ext.length);
  let p = 2;
  while (p + 3 <= listEnd) {
    const nameType = ext[p]!;
    const len = ext.readUInt16BE(p + 1);
    p += 3;
    if (p + len > listEnd) return unknown('server_name entry truncated');
    if (nameType === 0) {
      const host = normalizeHost(ext.toString('latin1', p, p + len));
      return host === undefined ? { kind: 'tls' } : { kind: 'tls', sni: host };
    }
    p += len;
  }
  return { kind: 'tls' };
}

// ---------------------------------------------------------------------------------------------------------
// HTTP

const METHOD = /^[A-Z]{1,20}$/;
const HOST_NAME = /^[a-z0-9_](?:[a-z0-9_.-]{0,251}[a-z0-9_])?$/;
const IPV6_LITERAL = /^\[[0-9a-f:.]+\]$/;

/**
 * Lower-cases a host name, drops one trailing dot, and returns undefined unless it is a plausible DNS name or
 * IP literal: a hostile name never reaches a map, a log or a connect call.
 */
export function normalizeHost(raw: string): string | undefined {
  let h = raw.toLowerCase();
  if (h.endsWith('.')) h = h.slice(0, -1);
  if (h.length === 0 || h.length > 253) return undefined;
  if (HOST_NAME.test(h) && !h.includes('..')) return h;
  if (IPV6_LITERAL.test(h)) return h;
  return undefined;
}

/** Splits `host[:port]` (or `[v6]:port`); undefined when it is not a valid authority. */
export function parseAuthority(value: string): { host: string; port?: number } | undefined {
  let hostPart = value.trim();
  let port: number | undefined;
  const m = /^(.*?)(?::(\d{1,5}))?$/.exec(hostPart);
  if (m && m[2] !== undefined && !(m[1]!.includes(':') && !m[1]!.startsWith('['))) {
    hostPart = m[1]!;
    port = Number(m[2]);
    if (port < 1 || port > 65_535) return undefined;
  }
  const host = normalizeHost(hostPart);
  if (host === undefined) return undefined;
  return port === undefined ? { host } : { host, port };
}

/**
 * Reads the request line and Host of a plain HTTP/1.x request. Waits for the whole header block (bounded by
 * PEEK_LIMIT) so that a Host line split across reads is never misread.
 */
export function parseHttpHead(buf: Buffer): PeekResult {
  const end = buf.indexOf('\r\n\r\n', 0, 'latin1');
  if (end < 0) {
    if (buf.length >= PEEK_LIMIT) return { kind: 'unknown', reason: 'HTTP header block too long', headTooLarge: true };
    // Reject early what cannot become a request line, rather than waiting for the timeout.
    const sp = buf.indexOf(0x20);
    const word = buf.toString('latin1', 0, sp < 0 ? Math.min(buf.length, 21) : sp);
    if (!/^[A-Z]*$/.test(word) || word.length > 20) return unknown('not an HTTP request line');
    return MORE;
  }
  const lines = buf.toString('latin1', 0, end).split('\r\n');
  const requestLine = /^([A-Z]+) (\S+) HTTP\/1\.[01]$/.exec(lines[0]!);
  if (!requestLine || !METHOD.test(requestLine[1]!)) return { kind: 'unknown', reason: 'not an HTTP/1.x request line', malformedHttp: true };
  const method = requestLine[1]!;
  const target = requestLine[2]!;
  let hostValue: string | undefined;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(':');
    if (colon <= 0) return { kind: 'unknown', reason: 'malformed HTTP header line', malformedHttp: true };
    if (colon === 4 && line.slice(0, 4).toLowerCase() === 'host') {
      if (hostValue !== undefined) return unknown('more than one Host header');
      hostValue = line.slice(5);
    }
  }
  const head: HttpHead = { method, target };
  const fromHeader = hostValue === undefined ? undefined : parseAuthority(hostValue);
  if (hostValue !== undefined && fromHeader === undefined) return unknown('Host header is not a host name');
  const fromTarget = absoluteTargetAuthority(target);
  if (fromTarget === null) return unknown('request target is not a valid URL');
  const authority = fromTarget ?? fromHeader;
  if (authority) {
    head.host = authority.host;
    if (authority.port !== undefined) head.port = authority.port;
  }
  if (fromTarget && fromHeader && fromTarget.host !== fromHeader.host) head.conflictingTarget = fromTarget.host;
  return { kind: 'http', request: head };
}

/**
 * The authority of an absolute-form target (`http://host:port/path`): undefined for origin-form and other
 * targets, null when it claims to be a URL but is not a valid one.
 */
export function absoluteTargetAuthority(target: string): { host: string; port?: number } | undefined | null {
  const m = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/([^/?#]*)/.exec(target);
  if (!m) return undefined;
  const auth = m[1]!;
  if (auth.includes('@')) return null; // userinfo: never route on it
  return parseAuthority(auth) ?? null;
}
