import type { BudgetKey, BudgetStore, ReserveOutcome, Ticket } from './types.js';
import { bucketOf, retryAfterMs, spentIn } from './window.js';

interface LocalTicket extends Ticket {
  readonly bucket: number;
}

/**
 * A budget store in this process: exact, synchronous, on the proxy's clock. It serves scope `pod` (one proxy is
 * the whole scope) and the local share a FailOpen budget falls back to while Redis is unreachable.
 */
export class LocalBudgetStore implements BudgetStore {
  private readonly keys = new Map<string, { buckets: Map<number, number>; remaining?: number }>();

  constructor(private readonly now: () => number) {}

  private state(key: BudgetKey): { buckets: Map<number, number>; remaining?: number } {
    let s = this.keys.get(key.id);
    if (!s) this.keys.set(key.id, (s = { buckets: new Map() }));
    return s;
  }

  reserve(key: BudgetKey, amount: number): ReserveOutcome {
    const s = this.state(key);
    const now = this.now();
    const spent = spentIn(s.buckets, key.shape, now);
    if (spent + amount > key.limit) {
      s.remaining = Math.max(0, key.limit - spent);
      return { ok: false, kind: 'exhausted', retryAfterMs: retryAfterMs(s.buckets, key.shape, now, key.limit, amount), remaining: s.remaining };
    }
    const bucket = bucketOf(key.shape, now);
    s.buckets.set(bucket, (s.buckets.get(bucket) ?? 0) + amount);
    s.remaining = key.limit - spent - amount;
    const ticket: LocalTicket = { amount, bucket };
    return { ok: true, ticket, remaining: s.remaining };
  }

  settle(key: BudgetKey, ticket: Ticket, used: number): void {
    const s = this.state(key);
    const t = ticket as LocalTicket;
    const now = this.now();
    spentIn(s.buckets, key.shape, now); // prune
    // The difference goes where the reservation was booked, while that bucket is still counted; an overrun
    // of a reservation whose bucket has left the window is booked now (it was spent, just later than planned).
    const delta = used - t.amount;
    const at = s.buckets.has(t.bucket) ? t.bucket : delta > 0 ? bucketOf(key.shape, now) : undefined;
    if (at === undefined || delta === 0) return;
    s.buckets.set(at, Math.max(0, (s.buckets.get(at) ?? 0) + delta));
    s.remaining = Math.max(0, key.limit - spentIn(s.buckets, key.shape, now));
  }

  charge(key: BudgetKey, used: number): void {
    if (used <= 0) return;
    const s = this.state(key);
    const now = this.now();
    const bucket = bucketOf(key.shape, now);
    s.buckets.set(bucket, (s.buckets.get(bucket) ?? 0) + used);
    s.remaining = Math.max(0, key.limit - spentIn(s.buckets, key.shape, now));
  }

  remaining(key: BudgetKey): number | undefined {
    return this.keys.get(key.id)?.remaining;
  }
}
