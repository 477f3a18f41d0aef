import { createSecureContext, rootCertificates, type SecureContext } from 'node:tls';
import type { Dispatcher, Pool } from 'undici';
import type { DenyKind } from '../../shared/providers/types.js';

// TLS to the providers: one undici Pool per provider host, kept alive and reused across the pod's requests.
// undici takes ~100 ms to import, so it loads after the proxy reports ready, never before.
// The pool map is bounded: an app cycling through Azure resource names (`<name>.openai.azure.com`) would
// otherwise grow it (and memory: ~60 KiB per host) without end. Least recently used pools past MAX_POOLS, and
// pools idle for IDLE_EVICT_MS, are closed gracefully (requests in flight on them finish).

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
  /** Most hosts with a pool at once (default MAX_POOLS). */
  maxPools?: number;
  /** A pool not used for this long, with nothing in flight, is closed (default IDLE_EVICT_MS). */
  idleEvictMs?: number;
}

export const MAX_POOLS = 256;
export const IDLE_EVICT_MS = 5 * 60_000;

/** Connections kept open to a provider between requests (undici closes sooner if the provider says so). */
const KEEP_ALIVE_MS = 60_000;
const CONNECT_TIMEOUT_MS = 10_000;

export class Upstreams {
  private mod?: Undici;
  private loading?: Promise<Undici>;
  /** In least recently used order: a hit moves its host to the end. */
  private readonly pools = new Map<string, { pool: Pool; usedAt: number }>();
  private readonly retiring = new Set<Pool>();
  private sweeper?: NodeJS.Timeout;
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
    if (hit) {
      this.pools.delete(host);
      hit.usedAt = Date.now();
      this.pools.set(host, hit);
      return hit.pool;
    }
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
    this.pools.set(host, { pool, usedAt: Date.now() });
    const max = this.opts.maxPools ?? MAX_POOLS;
    for (const [oldest] of this.pools) {
      if (this.pools.size <= max) break;
      this.retire(oldest);
    }
    this.sweeper ??= setInterval(() => this.sweep(), Math.max(1_000, (this.opts.idleEvictMs ?? IDLE_EVICT_MS) / 4));
    this.sweeper.unref();
    return pool;
  }

  /** Hosts with a pool now. */
  get size(): number {
    return this.pools.size;
  }

  /** Closes pools idle past idleEvictMs with nothing running or queued. */
  sweep(now = Date.now()): void {
    const idleMs = this.opts.idleEvictMs ?? IDLE_EVICT_MS;
    for (const [host, e] of this.pools) {
      const st = e.pool.stats;
      if (now - e.usedAt >= idleMs && st.running === 0 && st.pending === 0) this.retire(host);
    }
  }

  /** Removes a host's pool; close() lets its requests in flight finish, then ends its connections. */
  private retire(host: string): void {
    const e = this.pools.get(host);
    if (!e) return;
    this.pools.delete(host);
    this.retiring.add(e.pool);
    e.pool.close().then(
      () => this.retiring.delete(e.pool),
      () => this.retiring.delete(e.pool),
    );
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.sweeper) clearInterval(this.sweeper);
    const pools = [...[...this.pools.values()].map((e) => e.pool), ...this.retiring];
    this.pools.clear();
    this.retiring.clear();
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
