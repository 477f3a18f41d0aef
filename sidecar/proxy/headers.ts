import { parseAuthority } from './peek.js';

// Header rules for the hop between app and proxy and the hop between proxy and provider. Headers travel as
// flat raw arrays [name, value, name, value, …] so that, when nothing changed them, the provider gets the
// app's headers with their original case and order.

/** Hop-by-hop headers (RFC 9110 §7.6.1 and the de-facto ones): they describe one connection, not the message. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/**
 * A Host value as the provider gets it: lower case, no trailing dot, the port kept as the app named it. undici
 * takes the upstream TLS server name from Host, and opens a new connection whenever it changes: written as the
 * app wrote it, `API.OpenAI.COM` reached the provider as such, and alternating case cost a TLS handshake per
 * request. (The Mediator has already checked that the value names the connection's host.)
 */
export function normalizedAuthority(value: string): string {
  const a = parseAuthority(value);
  if (!a) return value;
  return a.port === undefined ? a.host : `${a.host}:${a.port}`;
}

/** Header names listed in Connection: also hop-by-hop for this message. */
function connectionListed(raw: readonly string[]): Set<string> | undefined {
  let listed: Set<string> | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() !== 'connection') continue;
    for (const token of raw[i + 1]!.split(',')) {
      const t = token.trim().toLowerCase();
      if (t) (listed ??= new Set()).add(t);
    }
  }
  return listed;
}

export interface UpstreamHeaderOptions {
  /** Replaces the Host value (plain-HTTP requests name port 80; the provider is reached on 443). */
  host?: string;
  /** Header changes from the pipeline: a string sets (replacing every existing value), null removes. */
  changes?: Readonly<Record<string, string | null>>;
  /** Length of the body that will be sent; undefined when the request has none. */
  bodyLength?: number;
}

/**
 * The headers the proxy sends to the provider: the app's, minus hop-by-hop ones and Expect (the body is
 * already here), with content-length stating the buffered body (a chunked upload becomes a sized one).
 */
export function upstreamRequestHeaders(raw: readonly string[], opts: UpstreamHeaderOptions = {}): string[] {
  const listed = connectionListed(raw);
  const changes = opts.changes;
  // content-length is never taken from a processor: it always states the body actually sent.
  const changed = changes ? new Set(Object.keys(changes).map((k) => k.toLowerCase()).filter((k) => k !== 'content-length')) : undefined;
  const out: string[] = [];
  let sawLength = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || lower === 'expect' || listed?.has(lower) || changed?.has(lower)) continue;
    if (lower === 'content-length') {
      if (sawLength || opts.bodyLength === undefined) continue;
      sawLength = true;
      out.push(name, String(opts.bodyLength));
      continue;
    }
    if (lower === 'host') {
      out.push(name, opts.host ?? normalizedAuthority(raw[i + 1]!));
      continue;
    }
    out.push(name, raw[i + 1]!);
  }
  if (changes) {
    for (const [name, value] of Object.entries(changes)) {
      const lower = name.toLowerCase();
      if (value === null || lower === 'content-length' || HOP_BY_HOP.has(lower)) continue;
      out.push(name, value);
    }
  }
  if (!sawLength && opts.bodyLength !== undefined) out.push('content-length', String(opts.bodyLength));
  return out;
}

/**
 * The provider's response headers as the app gets them: minus hop-by-hop ones (Node frames the response
 * itself), and minus content-length when a response processor may change the body's size.
 */
export function clientResponseHeaders(raw: readonly (Buffer | string)[], dropLength: boolean): string[] {
  const strs = raw.map((v) => (typeof v === 'string' ? v : v.toString('latin1')));
  const listed = connectionListed(strs);
  const out: string[] = [];
  for (let i = 0; i < strs.length; i += 2) {
    const name = strs[i]!;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || listed?.has(lower)) continue;
    if (dropLength && lower === 'content-length') continue;
    out.push(name, strs[i + 1]!);
  }
  return out;
}

/** True when the raw header list has a content-length. */
export function hasContentLength(raw: readonly string[]): boolean {
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === 'content-length') return true;
  return false;
}

/** The path and query of an absolute-form target (`https://h/p?q` → `/p?q`). */
export function originForm(absolute: string): string {
  const m = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/[^/?#]*([^#]*)/.exec(absolute);
  const rest = m?.[1] ?? '';
  if (rest === '') return '/';
  return rest.startsWith('/') ? rest : `/${rest}`;
}

/** The path without its query string: queries can carry API keys (Gemini's `?key=`), so logs get only this. */
export function pathForLog(path: string): string {
  const q = path.indexOf('?');
  return q < 0 ? path : path.slice(0, q);
}
