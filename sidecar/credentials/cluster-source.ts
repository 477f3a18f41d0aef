import { readFile } from 'node:fs/promises';
import type { Agent } from 'undici';
import { parseMaterial, sameCredential, type CredentialMaterial, type Unresolved } from '../../shared/credentials/material.js';
import { errorMessage } from '../../shared/errors.js';
import type { Logger } from '../../shared/log.js';
import type { Credential, ProviderId } from '../../shared/policy/types.js';
import { backoffDelay } from '../../shared/renewal.js';
import type { CredentialSource } from './source.js';

// Cluster mode: the managed credentials of this pod's namespace from the control plane, GET /v1/credentials,
// long polled like the policy and authenticated the same way (the projected ServiceAccount token, re-read on
// every request, over TLS verified against the aigress CA). The proxy asks for exactly the providers its policy
// names; the control plane answers only those its effective policy names (403 otherwise). Material is held in
// memory only; while the control plane is away the last material stays in use, and a Secret edit reaches the
// next request as soon as the long poll returns with it.

export interface ClusterCredentialOptions {
  controlPlane: URL;
  tokenFile: string;
  /** CA of the control plane's serving certificate. */
  caPem: string;
  log: Logger;
  longPollSeconds?: number;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /** The clock that minted credentials' expiry is checked against (tests hold it). */
  now?: () => number;
}

interface Held {
  credential: Credential;
  result: CredentialMaterial | Unresolved;
}

export class ClusterCredentialSource implements CredentialSource {
  /** Credentials in use by live pipelines, with their use counts. */
  private readonly used = new Map<string, { c: Credential; n: number }>();
  private readonly held = new Map<ProviderId, Held>();
  private readonly waiters = new Set<(failed?: boolean) => void>();
  private etag: string | undefined;
  private asked = '';
  private inflight: AbortController | undefined;
  private running = false;
  private closed = false;
  private failures = 0;
  private agent: Agent | undefined;
  private sleep: { timer: NodeJS.Timeout; wake(): void } | undefined;

  constructor(private readonly opts: ClusterCredentialOptions) {}

  use(credentials: readonly Credential[]): () => void {
    const keys = credentials.map((c) => JSON.stringify(c));
    credentials.forEach((c, i) => {
      const u = this.used.get(keys[i]!);
      if (u) u.n++;
      else this.used.set(keys[i]!, { c, n: 1 });
    });
    this.changed();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      for (const k of keys) {
        const u = this.used.get(k);
        if (u && --u.n <= 0) this.used.delete(k);
      }
      this.changed();
    };
  }

  get(c: Credential): CredentialMaterial | Unresolved | undefined {
    const h = this.held.get(c.provider);
    if (!h || !sameCredential(h.credential, c)) return undefined;
    const r = h.result;
    // Minted credentials (STS, Entra ID, Vertex AI) are kept while the control plane is away, but not past their
    // expiry: then calls fail closed here instead of being sent with credentials the provider will refuse.
    if (!('error' in r) && r.kind !== 'api-key' && r.expiresAt !== undefined && (this.opts.now ?? Date.now)() >= r.expiresAt) {
      return { error: `the short-lived credentials the control plane minted expired at ${new Date(r.expiresAt).toISOString()} and no fresh ones arrived` };
    }
    return r;
  }

  settled(c: Credential, signal: AbortSignal): Promise<void> {
    if (this.get(c) !== undefined || signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        this.waiters.delete(check);
        signal.removeEventListener('abort', done);
        resolve();
      };
      // Settled when the material is here, or when an attempt failed (the caller then fails closed).
      const check = (failed?: boolean): void => {
        if (failed || this.get(c) !== undefined || this.closed) done();
      };
      this.waiters.add(check);
      signal.addEventListener('abort', done, { once: true });
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    this.inflight?.abort();
    this.sleep?.wake();
    for (const w of [...this.waiters]) w(true);
    this.held.clear();
    await this.agent?.close();
  }

  /** The providers to ask for, in a stable order. */
  private providers(): string[] {
    return [...new Set([...this.used.values()].map((u) => u.c.provider))].sort();
  }

  /** The set in use changed: ask again at once (a new long poll) when it asks for other providers. */
  private changed(): void {
    const next = this.providers().join(',');
    if (next === this.asked && this.running) return;
    for (const p of [...this.held.keys()]) if (!this.providers().includes(p)) this.held.delete(p);
    if (this.running) {
      this.inflight?.abort();
      this.sleep?.wake();
    } else if (next !== '' && !this.closed) {
      this.running = true;
      void this.loop();
    }
  }

  private notify(failed: boolean): void {
    for (const w of [...this.waiters]) w(failed);
  }

  private async loop(): Promise<void> {
    while (!this.closed) {
      const providers = this.providers();
      if (providers.length === 0) break;
      const asked = providers.join(',');
      if (asked !== this.asked) this.etag = undefined;
      this.asked = asked;
      const ac = new AbortController();
      this.inflight = ac;
      try {
        await this.fetchOnce(providers, ac.signal);
        if (this.failures > 0) this.opts.log.info({ failures: this.failures }, 'credentials: control plane reachable again');
        this.failures = 0;
      } catch (err) {
        if (this.closed) break;
        if (ac.signal.aborted) continue; // the set changed: ask again at once
        this.failures++;
        this.notify(true);
        const delay = backoffDelay(this.failures, this.opts.backoffBaseMs ?? 1000, this.opts.backoffMaxMs ?? 30_000);
        if (this.failures === 1 || this.failures % 10 === 0) {
          this.opts.log.warn({ err: errorMessage(err), failures: this.failures, retryInMs: delay }, 'credentials fetch failed; keeping the credentials held');
        }
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, delay);
          this.sleep = { timer, wake: () => (clearTimeout(timer), resolve()) };
        });
        this.sleep = undefined;
      }
    }
    this.running = false;
    this.asked = '';
  }

  private async fetchOnce(providers: string[], signal: AbortSignal): Promise<void> {
    const { Agent: AgentCtor, request } = await import('undici');
    const wait = this.opts.longPollSeconds ?? 30;
    const timeout = (wait + 15) * 1000;
    this.agent ??= new AgentCtor({ connect: { ca: this.opts.caPem }, headersTimeout: timeout, bodyTimeout: timeout, keepAliveTimeout: 60_000 });
    let token: string;
    try {
      token = (await readFile(this.opts.tokenFile, 'utf8')).trim();
    } catch (err) {
      throw new Error(`cannot read token file ${this.opts.tokenFile}: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`);
    }
    const q = new URLSearchParams([...providers.map((p): [string, string] => ['provider', p]), ['wait', `${wait}s`]]);
    const res = await request(new URL(`/v1/credentials?${q.toString()}`, this.opts.controlPlane), {
      method: 'GET',
      dispatcher: this.agent,
      signal,
      headers: { authorization: `Bearer ${token}`, ...(this.etag ? { 'if-none-match': this.etag } : {}) },
    });
    const text = await res.body.text();
    if (res.statusCode === 304) return;
    if (res.statusCode !== 200) {
      let why = `control plane answered ${res.statusCode}`;
      try {
        const e = (JSON.parse(text) as { error?: { reason?: string; message?: string } }).error;
        if (e?.message) why += ` (${e.reason ?? 'Error'}): ${e.message}`;
      } catch {
        // not JSON
      }
      throw new Error(why);
    }
    this.accept(text, String(res.headers.etag ?? ''), providers);
  }

  private accept(text: string, etag: string, providers: string[]): void {
    let doc: { credentials?: unknown };
    try {
      doc = JSON.parse(text) as { credentials?: unknown };
    } catch {
      throw new Error('control plane sent credentials that are not JSON');
    }
    if (!Array.isArray(doc.credentials)) throw new Error('control plane sent no credentials list');
    const next = new Map<ProviderId, Held>();
    for (const e of doc.credentials as { provider?: unknown; credential?: Credential; material?: unknown; error?: unknown }[]) {
      if (typeof e?.provider !== 'string' || !providers.includes(e.provider) || !e.credential) continue;
      const provider = e.provider as ProviderId;
      const m = parseMaterial(e.material);
      next.set(provider, { credential: e.credential, result: m ?? { error: typeof e.error === 'string' ? e.error : 'the control plane sent no usable material' } });
    }
    for (const p of providers as ProviderId[]) {
      if (!next.has(p)) next.set(p, { credential: this.providersCredential(p), result: { error: 'the control plane sent none' } });
    }
    const changed = [...next].filter(([p, h]) => JSON.stringify(this.held.get(p)) !== JSON.stringify(h)).map(([p]) => p);
    this.held.clear();
    for (const [p, h] of next) this.held.set(p, h);
    this.etag = etag;
    if (changed.length > 0) this.opts.log.info({ providers: changed }, 'managed credentials updated from the control plane');
    this.notify(false);
  }

  private providersCredential(p: ProviderId): Credential {
    return [...this.used.values()].find((u) => u.c.provider === p)!.c;
  }
}
