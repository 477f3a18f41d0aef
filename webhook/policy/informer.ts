import type { Logger } from '../../shared/log.js';
import { backoffDelay, systemClock, type Clock, type Timer } from '../../shared/renewal.js';
import { apiErrorMessage, apiStatus } from '../kube.js';
import type { WatchClient, WatchHandle } from '../kube-watch.js';

// List, then watch from the list's resourceVersion, forever: the client-go reflector pattern, small. Unlike
// client-node's ListWatch it asks for bookmarks (so a resumed watch starts from a recent resourceVersion and
// rarely hits 410), re-lists on 410 Gone (at once the first time, with backoff while every new watch expires
// again: a 410 storm must not become a list loop against a struggling API server), retries failures with
// backoff instead of stopping, and aborts a watch that has gone silent (a dead connection looks exactly like a
// quiet resource otherwise). What it holds is never dropped for a failure: the last good state stays.

export interface KubeObject {
  metadata?: {
    name?: string;
    namespace?: string;
    resourceVersion?: string;
    labels?: Record<string, string>;
    [k: string]: unknown;
  };
  [k: string]: unknown;
}

export type InformerEvent = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface InformerOptions<T extends KubeObject> {
  /** Human name for logs: `namespaces`, `egresspolicies`. */
  name: string;
  watch: WatchClient;
  /** Collection path to watch, e.g. /api/v1/namespaces. */
  path: string;
  list(): Promise<{ items: T[]; metadata?: { resourceVersion?: string } }>;
  onEvent(type: InformerEvent, obj: T): void;
  log: Logger;
  clock?: Clock;
  /** Server-side watch timeout; the watch is renewed after it. */
  watchTimeoutSeconds?: number;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /**
   * A watch with no event and no bookmark for this long is taken for dead and restarted. Default: the watch
   * timeout plus 30 s (the API server ends a healthy watch at its timeout, and sends bookmarks meanwhile).
   */
  stallTimeoutMs?: number;
}

/** What an informer can say about itself, for readiness and metrics. */
export interface InformerHealth {
  name: string;
  /** The first list is in: its items are known. */
  synced: boolean;
  /** Why it is not current (list or watch failing, watch stalled, 410 storm), or undefined when it is. */
  problem?: string;
  /** Since when (ms since the epoch) it has not been current. */
  since?: number;
}

const keyOf = (o: KubeObject): string => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;

export class Informer<T extends KubeObject> {
  private readonly cache = new Map<string, T>();
  private rv = '';
  private stopped = false;
  private failures = 0;
  /** 410s in a row with no healthy watch between them. */
  private expirations = 0;
  private problem: { what: string; since: number } | undefined;
  private isSynced = false;
  private abort: (() => void) | undefined;
  private timer: Timer | undefined;
  private watchdog: Timer | undefined;
  private resolveSynced!: () => void;
  /** Resolves after the first successful list. */
  readonly synced = new Promise<void>((r) => (this.resolveSynced = r));
  private readonly clock: Clock;

  constructor(private readonly opts: InformerOptions<T>) {
    this.clock = opts.clock ?? systemClock;
  }

  /** Starts listing and watching; resolves once the first list is in (retrying failures meanwhile). */
  start(): Promise<void> {
    void this.relist();
    return this.synced;
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
    this.watchdog?.cancel();
    this.abort?.();
  }

  items(): T[] {
    return [...this.cache.values()];
  }

  health(): InformerHealth {
    return { name: this.opts.name, synced: this.isSynced, ...(this.problem && { problem: this.problem.what, since: this.problem.since }) };
  }

  private trouble(what: string): void {
    this.problem = { what, since: this.problem?.since ?? this.clock.now() };
  }

  private healthy(): void {
    if (this.problem) this.opts.log.info({ informer: this.opts.name, afterMs: this.clock.now() - this.problem.since }, 'watch current again');
    this.problem = undefined;
    this.expirations = 0;
  }

  /** The resourceVersion the next watch resumes from. */
  resourceVersion(): string {
    return this.rv;
  }

  private retryLater(what: string, err: unknown, relist: boolean): void {
    this.failures++;
    const delay = backoffDelay(this.failures, this.opts.backoffBaseMs ?? 500, this.opts.backoffMaxMs ?? 30_000);
    this.opts.log.warn({ informer: this.opts.name, err: apiErrorMessage(err), retryInMs: delay }, `${what} failed`);
    this.trouble(`${what} failing: ${apiErrorMessage(err)}`);
    this.timer = this.clock.setTimeout(() => void (relist ? this.relist() : this.startWatch()), delay);
  }

  /**
   * 410 Gone: the resourceVersion is compacted away, so list again. At once the first time; while every new
   * watch expires again before a single event or bookmark, with backoff.
   */
  private expired(): void {
    this.expirations++;
    if (this.expirations === 1) {
      this.opts.log.info({ informer: this.opts.name, resourceVersion: this.rv }, 'watch expired; listing again');
      void this.relist();
      return;
    }
    const delay = backoffDelay(this.expirations - 1, this.opts.backoffBaseMs ?? 500, this.opts.backoffMaxMs ?? 30_000);
    this.trouble(`watch expires at once (410 Gone ${this.expirations} times in a row)`);
    this.opts.log.warn({ informer: this.opts.name, expirations: this.expirations, retryInMs: delay }, 'watch expired again right after a list; listing again after a pause');
    this.timer = this.clock.setTimeout(() => void this.relist(), delay);
  }

  private async relist(): Promise<void> {
    if (this.stopped) return;
    let list: Awaited<ReturnType<InformerOptions<T>['list']>>;
    try {
      list = await this.opts.list();
    } catch (err) {
      this.retryLater('list', err, true);
      return;
    }
    if (this.stopped) return;
    const fresh = new Map(list.items.map((o) => [keyOf(o), o]));
    for (const [k, old] of this.cache) {
      if (!fresh.has(k)) {
        this.cache.delete(k);
        this.opts.onEvent('DELETED', old);
      }
    }
    for (const [k, o] of fresh) {
      const old = this.cache.get(k);
      this.cache.set(k, o);
      if (!old) this.opts.onEvent('ADDED', o);
      else if (old.metadata?.resourceVersion !== o.metadata?.resourceVersion) this.opts.onEvent('MODIFIED', o);
    }
    this.rv = list.metadata?.resourceVersion ?? '';
    this.failures = 0;
    this.isSynced = true;
    if (this.expirations === 0) this.healthy(); // in a 410 storm only a watch that holds says it is over
    this.resolveSynced();
    await this.startWatch();
  }

  private async startWatch(): Promise<void> {
    if (this.stopped) return;
    const timeout = this.opts.watchTimeoutSeconds ?? 300;
    let expired = false;
    let ended = false;
    let sawEvent = false;
    let stalled = false;
    const startedAt = this.clock.now();
    const done = (err: unknown): void => {
      if (ended) return;
      ended = true;
      this.watchdog?.cancel();
      if (this.stopped) return;
      const status = apiStatus(err);
      if (expired || status === 410) this.expired();
      // The watchdog's own verdict; the restart needs no backoff: it comes at most once per stall timeout.
      else if (stalled) void this.startWatch();
      else if (err) this.retryLater('watch', err, false);
      // A watch closed at once with nothing in it is a failure in disguise: back off rather than spin.
      else if (!sawEvent && this.clock.now() - startedAt < 1000) this.retryLater('watch', new Error('closed at once'), false);
      else void this.startWatch(); // the server ended it (timeout): resume from the last resourceVersion
    };
    const armWatchdog = (): void => {
      this.watchdog?.cancel();
      // Bookmarks arrive about once a minute and the server ends the watch at `timeout`: silence well past
      // that means the connection is dead.
      this.watchdog = this.clock.setTimeout(() => {
        this.opts.log.warn({ informer: this.opts.name, silentMs: stallMs }, 'watch silent for too long; reconnecting');
        this.trouble(`watch stalled (nothing for ${Math.round(stallMs / 1000)} s)`);
        stalled = true;
        handle?.abort();
        done(null);
      }, stallMs);
    };
    const stallMs = this.opts.stallTimeoutMs ?? (timeout + 30) * 1000;
    let handle: WatchHandle | undefined;
    armWatchdog();
    try {
      const ctl = await this.opts.watch.watch(
        this.opts.path,
        { allowWatchBookmarks: true, resourceVersion: this.rv, timeoutSeconds: timeout },
        (type: string, obj: T) => {
          if (ended) return;
          armWatchdog();
          sawEvent = true;
          if (type === 'ERROR') {
            if ((obj as { code?: unknown }).code === 410) expired = true;
            else this.opts.log.warn({ informer: this.opts.name, status: obj }, 'watch error event');
            return;
          }
          if (this.problem || this.expirations > 0) this.healthy();
          const rv = obj.metadata?.resourceVersion;
          if (rv) this.rv = rv;
          if (type === 'BOOKMARK') return;
          this.failures = 0;
          const k = keyOf(obj);
          if (type === 'DELETED') {
            this.cache.delete(k);
            this.opts.onEvent('DELETED', obj);
          } else if (type === 'ADDED' || type === 'MODIFIED') {
            const had = this.cache.has(k);
            this.cache.set(k, obj);
            this.opts.onEvent(had ? 'MODIFIED' : 'ADDED', obj);
          }
        },
        done,
      );
      handle = ctl;
      this.abort = () => ctl.abort();
      // stop() or the watchdog may have run while the watch was being opened: they had nothing to abort then.
      if (ended || this.stopped) ctl.abort();
    } catch (err) {
      done(err);
    }
  }
}
