import { createSecureContext, rootCertificates, type SecureContext } from 'node:tls';
import type { Dispatcher, Pool } from 'undici';
import type { DenyKind } from '../../shared/providers/types.js';

// TLS to the providers: one undici Pool per provider host, kept alive and reused across the pod's requests.
// undici takes ~100 ms to import, so it loads after the proxy reports ready, never before.

interface Undici {
  Pool: typeof import('undici').Pool;
  buildConnector: typeof import('undici').buildConnector;
}

/**
 * undici's Pool and connector alone: the package index also loads fetch, WebSocket, caches and mocks
 * (~9 MiB RSS and ~60 ms more). Falls back to the index if a future undici moves these files.
 */
async function loadUndici(): Promise<Undici> {
  try {
    const [pool, connect] = await Promise.all([
      import('undici/lib/dispatcher/pool.js' as string) as Promise<{ default: Undici['Pool'] }>,
      import('undici/lib/core/connect.js' as string) as Promise<{ default: Undici['buildConnector'] }>,
    ]);
    if (typeof pool.default === 'function' && typeof connect.default === 'function') {
      return { Pool: pool.default, buildConnector: connect.default };
    }
  } catch {
    // fall through to the public entry point
  }
  const m = await import('undici');
  return { Pool: m.Pool, buildConnector: m.buildConnector };
}

export interface UpstreamOptions {
  /** Headers and idle-body timeout (--upstream-timeout). */
  timeoutMs: number;
  /** host → address to dial instead (demo, loopback tests); TLS is still verified for the original host. */
  resolve?: Readonly<Record<string, { host: string; port: number }>>;
  /** Extra roots to trust besides the public ones (tests); NODE_EXTRA_CA_CERTS works without this. */
  extraCa?: readonly string[];
}

/** Connections kept open to a provider between requests (undici closes sooner if the provider says so). */
const KEEP_ALIVE_MS = 60_000;
const CONNECT_TIMEOUT_MS = 10_000;

export class Upstreams {
  private mod?: Undici;
  private loading?: Promise<Undici>;
  private readonly pools = new Map<string, Pool>();
  private closed = false;

  /**
   * With extra roots, one context for every upstream connection: building a context from ~150 PEM roots
   * costs tens of milliseconds, far too much per connection. Without them Node's default store is used.
   */
  private readonly secureContext?: SecureContext;

  constructor(private readonly opts: UpstreamOptions) {
    if (opts.extraCa && opts.extraCa.length > 0) this.secureContext = createSecureContext({ ca: [...rootCertificates, ...opts.extraCa] });
  }

  /** Starts loading undici; resolves when it is loaded. */
  load(): Promise<Undici> {
    this.loading ??= loadUndici().then((m) => (this.mod = m));
    return this.loading;
  }

  /** The pool for `host` (sync once undici is loaded: the hot path does not await). */
  pool(host: string): Pool | Promise<Pool> {
    const hit = this.pools.get(host);
    if (hit) return hit;
    if (!this.mod) return this.load().then(() => this.pool(host));
    if (this.closed) throw new Error('upstreams closed');
    const { Pool: PoolCtor, buildConnector } = this.mod;
    const base = buildConnector({
      timeout: Math.min(CONNECT_TIMEOUT_MS, this.opts.timeoutMs),
      ...(this.secureContext ? { secureContext: this.secureContext } : {}),
    });
    const target = this.opts.resolve?.[host];
    const connect: typeof base = target
      ? (o, cb) => base({ ...o, hostname: target.host, port: String(target.port), servername: host }, cb)
      : base;
    const pool = new PoolCtor(`https://${host}`, {
      connect,
      keepAliveTimeout: KEEP_ALIVE_MS,
      keepAliveMaxTimeout: KEEP_ALIVE_MS,
      headersTimeout: this.opts.timeoutMs,
      bodyTimeout: this.opts.timeoutMs,
    });
    this.pools.set(host, pool);
    return pool;
  }

  async close(): Promise<void> {
    this.closed = true;
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.map((p) => p.destroy().catch(() => undefined)));
  }
}

export type UpstreamErrorReason = 'refused' | 'reset' | 'closed' | 'tls' | 'timeout' | 'dns' | 'other';

export interface UpstreamFailure {
  reason: UpstreamErrorReason;
  kind: Extract<DenyKind, 'bad_gateway' | 'timeout'>;
  status: 502 | 504;
}

function codeOf(err: unknown): string {
  const e = err as { code?: unknown; cause?: { code?: unknown } };
  const code = typeof e.code === 'string' ? e.code : '';
  // undici wraps socket errors; the cause tells refused from reset from TLS.
  if ((code === '' || code === 'UND_ERR_SOCKET' || code === 'UND_ERR_CONNECT') && typeof e.cause?.code === 'string') return e.cause.code;
  return code;
}

const TLS_CODES = /^(ERR_TLS_|ERR_SSL_|CERT_|UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|HOSTNAME_MISMATCH)/;

/** Maps an undici/socket error to the metric reason and the status the app gets (504 for timeouts, else 502). */
export function classifyUpstreamError(err: unknown): UpstreamFailure {
  const code = codeOf(err);
  const bad = (reason: UpstreamErrorReason): UpstreamFailure => ({ reason, kind: 'bad_gateway', status: 502 });
  switch (code) {
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'ETIMEDOUT':
      return { reason: 'timeout', kind: 'timeout', status: 504 };
    case 'ECONNREFUSED':
      return bad('refused');
    case 'ECONNRESET':
    case 'EPIPE':
      return bad('reset');
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return bad('dns');
    case 'UND_ERR_SOCKET':
      return bad('closed');
    default:
      return TLS_CODES.test(code) ? bad('tls') : bad('other');
  }
}

export type { Dispatcher };
