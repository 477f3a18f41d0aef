import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';
import { errorMessage } from '../../shared/errors.js';
import type { Logger } from '../../shared/log.js';
import { BUDGET_SYNC_LUA } from './redis-script.js';
import type { BudgetKey, BudgetStore, ReserveOutcome, Ticket } from './types.js';

// Budgets shared by every proxy of a scope, counted in Redis. The window arithmetic runs in one Lua script on
// Redis's clock (redis-script.ts); this side keeps, per budget key, a lease (a slice of the window this proxy
// reserved ahead and spends without a round trip), the settlements not yet sent, and its own contribution to
// the window (its ledger), which it restores if Redis comes back without it. docs/budgets.md states the bound.

export interface RedisStoreOptions {
  url: string;
  /** Overrides the URL's password (from a Secret, kept off the command line). */
  password?: string;
  /** Unique per proxy process (the pod name plus a random suffix). */
  proxyId: string;
  log: Logger;
  now?: () => number;
  /** Longest a lease is spent locally before it is returned; default 1 s (never past its bucket). */
  leaseTtlMs?: number;
  /** After Redis lost the window, how long every proxy waits for the others to restore theirs; default 2 s. */
  recoveryGraceMs?: number;
  /** Per command; a slower Redis counts as down for that call. Default 1 s. */
  commandTimeoutMs?: number;
  onStatus?(up: boolean): void;
  onCall?(): void;
  onRestored?(key: string): void;
}

interface Lease {
  readonly bucket: number;
  readonly total: number;
  left: number;
  readonly until: number;
  timer?: NodeJS.Timeout;
}

interface RedisTicket extends Ticket {
  readonly bucket: number;
  readonly lease?: Lease;
}

interface Waiting {
  readonly amount: number;
  readonly resolve: (o: ReserveOutcome) => void;
  retried: boolean;
}

interface Row {
  spent: number;
  leased: number;
}

/** The last refusal Redis gave for a key, kept to answer the next ones without a round trip (see reserve). */
interface Refusal {
  /** Proxy clock: until then nothing frees in the window but refunds (sent ≤ REFUSAL_CACHE_MS ago). */
  readonly validUntil: number;
  /** Proxy clock when the answer arrived: the schedule's times count from then. */
  readonly at: number;
  readonly remaining: number;
  readonly othersLeased: number;
  /** (ms until a bucket leaves the window, its units), oldest first. */
  readonly schedule: readonly number[];
  /** When the newest bucket leaves (ms from `at`): everything spent so far is free by then. */
  readonly lastMs: number;
}

class SharedKey {
  lease?: Lease;
  readonly queue: Waiting[] = [];
  syncing = false;
  /** This proxy's net contribution to each live bucket (reservations, leases, settlements). */
  readonly ledger = new Map<number, Row>();
  /** Changes Redis has not seen yet. */
  pending = new Map<number, Row>();
  /** Changes the call in flight carries (until its answer updates `remaining`). */
  sending = new Map<number, Row>();
  remaining?: number;
  peers = 1;
  flushTimer?: NodeJS.Timeout;
  retryTimer?: NodeJS.Timeout;
  /** Requests asked once more after other proxies' leases come back; each group has its own timer. */
  readonly held = new Map<NodeJS.Timeout, Waiting[]>();
  /** While Redis restores a lost window: no reservation is asked before this (proxy clock). */
  pausedUntil = 0;
  refusal?: Refusal;
  /** Redis's bucket at the last answer, and when (proxy clock): where a charge is booked. */
  cur?: { bucket: number; at: number };
  constructor(readonly key: BudgetKey) {}
}

const add = (m: Map<number, Row>, bucket: number, spent: number, leased: number): void => {
  const r = m.get(bucket);
  if (r) {
    r.spent += spent;
    r.leased += leased;
  } else m.set(bucket, { spent, leased });
};

/** Requests reserved in one round trip at most. */
const BATCH = 64;
/** Settlements are sent at most this long after they happen (batched with the next reservation when sooner). */
const FLUSH_MS = 50;
/**
 * Longest a refusal from Redis is reused for later requests that need more than it said was left. Within a
 * bucket the window frees nothing but refunds (settlements below the reservation, returned leases); this
 * proxy's own refunds drop the cached answer at once, other proxies' are seen at most this much later (they
 * already reach Redis up to FLUSH_MS, or a lease's life, after they happen). The bucket's end bounds it too.
 */
export const REFUSAL_CACHE_MS = 100;

export class RedisBudgetStore implements BudgetStore {
  private readonly client: Redis;
  private readonly sha = createHash('sha1').update(BUDGET_SYNC_LUA).digest('hex');
  private readonly keys = new Map<string, SharedKey>();
  private readonly now: () => number;
  private readonly leaseTtlMs: number;
  private readonly graceMs: number;
  private closed = false;
  /** Round trips made (for the Redis-calls-per-request figure). */
  calls = 0;
  /** Refusals answered from the last one Redis gave, without a round trip. */
  refusalsServed = 0;

  constructor(private readonly opts: RedisStoreOptions) {
    this.now = opts.now ?? Date.now;
    this.leaseTtlMs = opts.leaseTtlMs ?? 1_000;
    this.graceMs = opts.recoveryGraceMs ?? 2_000;
    this.client = new Redis(opts.url, {
      ...(opts.password !== undefined && { password: opts.password }),
      // A budget decision must not wait for a reconnect: with no connection a call fails at once and the
      // budget's onStoreError decides. Reconnects back off from 50 ms to 1 s, with jitter.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: opts.commandTimeoutMs ?? 1_000,
      connectTimeout: 2_000,
      retryStrategy: (n: number) => Math.round(Math.min(1_000, 50 * 2 ** n) * (0.5 + Math.random() / 2)),
      lazyConnect: false,
    });
    this.client.on('ready', () => {
      opts.log.info('budget store connected');
      opts.onStatus?.(true);
      for (const k of this.keys.values()) if (k.pending.size > 0) this.kick(k);
    });
    let wasUp = true;
    this.client.on('close', () => {
      if (wasUp) opts.log.warn('budget store connection lost; reconnecting');
      wasUp = false;
      opts.onStatus?.(false);
    });
    this.client.on('ready', () => (wasUp = true));
    this.client.on('error', (err: Error) => opts.log.debug({ err: errorMessage(err) }, 'budget store error'));
    opts.onStatus?.(false);
  }

  get up(): boolean {
    return this.client.status === 'ready';
  }

  /** Waits for the first connection (tests, startup logs); resolves false after `ms`. */
  async connected(ms = 5_000): Promise<boolean> {
    if (this.up) return true;
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(false), ms);
      this.client.once('ready', () => {
        clearTimeout(t);
        resolve(true);
      });
    });
  }

  private state(key: BudgetKey): SharedKey {
    let k = this.keys.get(key.id);
    if (!k) this.keys.set(key.id, (k = new SharedKey(key)));
    return k;
  }

  reserve(key: BudgetKey, amount: number): ReserveOutcome | Promise<ReserveOutcome> {
    const k = this.state(key);
    const l = k.lease;
    if (l && l.left >= amount && this.now() < l.until) {
      l.left -= amount;
      const ticket: RedisTicket = { amount, bucket: l.bucket, lease: l };
      return { ok: true, ticket, remaining: (k.remaining ?? 0) + l.left };
    }
    const refused = this.cachedRefusal(k, amount);
    if (refused) return refused;
    if (!this.up || this.closed) return { ok: false, kind: 'down', error: this.closed ? 'closed' : `redis ${this.client.status}` };
    return new Promise((resolve) => {
      k.queue.push({ amount, resolve, retried: false });
      this.kick(k);
    });
  }

  /**
   * Answers a request from the last refusal while it holds: the request needs more than Redis said was left
   * (other proxies' unspent leases included, which come back), and no bucket has left the window since.
   */
  private cachedRefusal(k: SharedKey, amount: number): ReserveOutcome | undefined {
    const c = k.refusal;
    if (!c) return undefined;
    const now = this.now();
    if (now >= c.validUntil) {
      k.refusal = undefined;
      return undefined;
    }
    if (amount <= c.remaining + c.othersLeased) return undefined;
    this.refusalsServed++;
    return { ok: false, kind: 'exhausted', retryAfterMs: amount > k.key.limit ? undefined : retryFrom(c, k.key.limit, amount, now), remaining: c.remaining };
  }

  settle(key: BudgetKey, ticket: Ticket, used: number): void {
    const t = ticket as RedisTicket;
    const delta = used - t.amount;
    if (delta === 0) return;
    const k = this.state(key);
    if (delta < 0) k.refusal = undefined; // capacity came back: ask Redis again
    if (t.lease && k.lease === t.lease) {
      // Still this proxy's live lease: the difference stays in it (a refund can serve the next request).
      t.lease.left -= delta;
      return;
    }
    add(k.pending, t.bucket, delta, 0);
    add(k.ledger, t.bucket, delta, 0);
    this.scheduleFlush(k);
  }

  /**
   * Books units spent without a reservation (audit mode lets a request the budget refused pass: what it
   * used still counts), in Redis's current bucket as this proxy last saw it.
   */
  charge(key: BudgetKey, used: number): void {
    if (used <= 0) return;
    const k = this.state(key);
    const bucket = k.cur ? k.cur.bucket + Math.floor((this.now() - k.cur.at) / key.shape.bucketMs) : Math.floor(this.now() / key.shape.bucketMs);
    add(k.pending, bucket, used, 0);
    add(k.ledger, bucket, used, 0);
    this.scheduleFlush(k);
  }

  remaining(key: BudgetKey): number | undefined {
    const k = this.keys.get(key.id);
    if (!k || k.remaining === undefined) return undefined;
    // What Redis last said, corrected by what this proxy changed since (its unspent lease, refunds and returned
    // leases not yet sent or not yet answered): the gauge then shows a settled refund at once.
    let unsent = 0;
    for (const m of [k.pending, k.sending]) for (const r of m.values()) unsent += r.spent;
    return Math.max(0, k.remaining + (k.lease?.left ?? 0) - unsent);
  }

  /** This proxy's share of a budget while Redis cannot be reached: the limit over the proxies last seen. */
  share(key: BudgetKey): number {
    const peers = this.keys.get(key.id)?.peers ?? 1;
    return Math.floor(key.limit / Math.max(1, peers));
  }

  private scheduleFlush(k: SharedKey): void {
    if (k.flushTimer || this.closed) return;
    k.flushTimer = setTimeout(() => {
      k.flushTimer = undefined;
      this.kick(k);
    }, FLUSH_MS);
    k.flushTimer.unref();
  }

  private kick(k: SharedKey): void {
    if (k.syncing) return;
    if (k.queue.length === 0 && k.pending.size === 0) return;
    const pause = k.pausedUntil - this.now();
    if (pause > 0) {
      // Redis is restoring a lost window: reserve nothing (and do not ask in a loop) until the others have had
      // the time; settlements still go at their pace, so refunds count as soon as reservations resume.
      this.later(k, pause);
      if (k.pending.size === 0) return;
    }
    if (!this.up) {
      // Nothing can be decided: waiting requests fall to onStoreError; settlements wait for the reconnect.
      for (const w of k.queue.splice(0)) w.resolve({ ok: false, kind: 'down', error: `redis ${this.client.status}` });
      return;
    }
    k.syncing = true;
    void this.sync(k, pause <= 0).finally(() => {
      k.syncing = false;
      if (k.queue.length > 0 && k.pausedUntil <= this.now()) setImmediate(() => this.kick(k));
      else if (k.pending.size > 0) this.scheduleFlush(k);
    });
  }

  private returnLease(k: SharedKey): void {
    const l = k.lease;
    if (!l) return;
    k.lease = undefined;
    if (l.left > 0) k.refusal = undefined;
    if (l.timer) clearTimeout(l.timer);
    add(k.pending, l.bucket, -l.left, -l.total);
    add(k.ledger, l.bucket, -l.left, -l.total);
  }

  private async sync(k: SharedKey, reserve = true): Promise<void> {
    const batch = reserve ? k.queue.splice(0, BATCH) : [];
    // A new reservation replaces the lease (it did not cover the request); a flush of settlements keeps it.
    if (batch.length > 0 || this.closed) this.returnLease(k);
    const key = k.key;
    const s = key.shape;
    // What this call sends is taken out of `pending` now: settlements that arrive during the round trip go
    // to the next call (and a failed call puts its part back).
    const sent = k.pending;
    k.pending = new Map();
    k.sending = sent;
    const buckets = new Set([...k.ledger.keys(), ...sent.keys()]);
    const rows: number[] = [];
    for (const b of buckets) {
      const p = sent.get(b);
      const l = k.ledger.get(b);
      rows.push(b, p?.spent ?? 0, l?.spent ?? 0, p?.leased ?? 0, l?.leased ?? 0);
    }
    const amounts = batch.map((w) => w.amount);
    const wantLease = batch.length > 0 && !batch.some((w) => w.retried) && !this.closed;
    const leaseMin = amounts.length > 0 ? Math.max(...amounts) : 0;
    const args = [this.opts.proxyId, key.limit, s.windowMs, s.bucketMs, s.back, this.graceMs, wantLease ? 1 : 0, Math.floor(key.limit / 10), leaseMin, amounts.length, buckets.size, ...amounts, ...rows];
    let r: number[];
    const sentAt = this.now();
    try {
      r = await this.eval(key.id, args.map(String));
    } catch (err) {
      k.sending = new Map();
      for (const w of batch) w.resolve({ ok: false, kind: 'down', error: errorMessage(err) });
      for (const [b, row] of sent) add(k.pending, b, row.spent, row.leased);
      if (k.pending.size > 0) this.scheduleFlush(k);
      return;
    }
    const [cur, remaining, lease, wait, othersLeased, peers, restored, msLeft, nSchedule] = r as [number, number, number, number, number, number, number, number, number];
    const at = this.now();
    k.sending = new Map();
    k.cur = { bucket: cur, at: sentAt };
    for (const b of k.ledger.keys()) if (b < cur - s.back) k.ledger.delete(b);
    k.peers = Math.max(1, peers);
    k.remaining = remaining;
    if (restored > 0) {
      this.opts.log.warn({ key: key.id, buckets: restored }, 'budget store had lost this window (Redis restarted?); restored this proxy\'s share');
      this.opts.onRestored?.(key.id);
    }
    if (wait > 0) {
      // Redis lost the window and proxies are restoring their shares: decide nothing until they have.
      k.queue.unshift(...batch);
      k.pausedUntil = at + wait;
      this.later(k, wait);
      return;
    }
    const retried: Waiting[] = [];
    let refusedAny = false;
    batch.forEach((w, i) => {
      if (r[9 + 2 * i] === 1) {
        add(k.ledger, cur, w.amount, 0);
        const ticket: RedisTicket = { amount: w.amount, bucket: cur };
        w.resolve({ ok: true, ticket, remaining });
        return;
      }
      const retry = r[10 + 2 * i]!;
      if (!w.retried && othersLeased > 0 && remaining + othersLeased >= w.amount) {
        // Other proxies hold unspent leases that would cover it: they return them within a lease's life, so
        // ask again then rather than refuse a request the budget still covers. It waits aside (not in the
        // queue, which the next call would send at once, while those leases are still out).
        w.retried = true;
        retried.push(w);
        return;
      }
      refusedAny = true;
      w.resolve({ ok: false, kind: 'exhausted', retryAfterMs: retry < 0 ? undefined : retry, remaining });
    });
    if (refusedAny && nSchedule > 0) {
      const base = 9 + 2 * batch.length;
      const schedule = r.slice(base, base + 2 * nSchedule);
      // The bucket ends on Redis's clock at most msLeft after the call was sent: nothing leaves the window
      // before then, whatever the two clocks say.
      k.refusal = { validUntil: sentAt + Math.min(msLeft, REFUSAL_CACHE_MS), at, remaining, othersLeased, schedule, lastMs: msLeft + s.back * s.bucketMs };
    } else if (batch.length > 0) k.refusal = undefined;
    if (lease > 0) {
      add(k.ledger, cur, lease, lease);
      // A lease is spent only within the bucket it was booked in, so the window's bound holds for it too. The
      // bucket ends msLeft after Redis answered, which is at most msLeft after the call was sent: the life counts
      // from then, so a slow answer shortens the lease rather than letting it outlive its bucket.
      const until = sentAt + Math.min(this.leaseTtlMs, msLeft - 5);
      const life = until - at;
      if (life > 0) {
        const l: Lease = { bucket: cur, total: lease, left: lease, until };
        l.timer = setTimeout(() => {
          if (k.lease !== l) return;
          this.returnLease(k);
          this.kick(k);
        }, life);
        l.timer.unref();
        k.lease = l;
      } else {
        add(k.pending, cur, -lease, -lease);
        add(k.ledger, cur, -lease, -lease);
        this.scheduleFlush(k);
      }
    }
    if (retried.length > 0) {
      const timer = setTimeout(() => {
        k.held.delete(timer);
        k.queue.unshift(...retried);
        this.kick(k);
      }, this.leaseTtlMs + 50);
      timer.unref();
      k.held.set(timer, retried);
    }
  }

  private later(k: SharedKey, ms: number): void {
    if (k.retryTimer) return;
    k.retryTimer = setTimeout(() => {
      k.retryTimer = undefined;
      this.kick(k);
    }, ms);
    k.retryTimer.unref();
  }

  private async eval(key: string, args: string[]): Promise<number[]> {
    this.calls++;
    this.opts.onCall?.();
    try {
      return (await this.client.evalsha(this.sha, 1, key, ...args)) as number[];
    } catch (err) {
      if (!errorMessage(err).includes('NOSCRIPT')) throw err;
      this.calls++;
      this.opts.onCall?.();
      return (await this.client.eval(BUDGET_SYNC_LUA, 1, key, ...args)) as number[];
    }
  }

  /** Returns leases and sends pending settlements (best effort), then disconnects. */
  async close(): Promise<void> {
    this.closed = true;
    const work: Promise<void>[] = [];
    for (const k of this.keys.values()) {
      if (k.flushTimer) clearTimeout(k.flushTimer);
      if (k.retryTimer) clearTimeout(k.retryTimer);
      k.flushTimer = k.retryTimer = undefined;
      for (const w of k.queue.splice(0)) w.resolve({ ok: false, kind: 'down', error: 'closed' });
      for (const [timer, ws] of k.held) {
        clearTimeout(timer);
        for (const w of ws) w.resolve({ ok: false, kind: 'down', error: 'closed' });
      }
      k.held.clear();
      this.returnLease(k);
      if (this.up && k.pending.size > 0 && !k.syncing) work.push(this.sync(k));
    }
    await Promise.allSettled(work);
    try {
      await this.client.quit();
    } catch {
      this.client.disconnect();
    }
  }
}

/** Milliseconds from `now` until `amount` fits, from a cached refusal's schedule (the Lua script's arithmetic). */
function retryFrom(c: Refusal, limit: number, amount: number, now: number): number {
  const elapsed = now - c.at;
  let spent = limit - c.remaining;
  for (let i = 0; i + 1 < c.schedule.length; i += 2) {
    spent -= c.schedule[i + 1]!;
    if (spent + amount <= limit) return Math.max(1, c.schedule[i]! - elapsed);
  }
  return Math.max(1, c.lastMs - elapsed);
}
