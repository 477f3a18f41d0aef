// The budget window, as pure functions over a map of bucket → units spent. The local store runs these; the
// Redis store's Lua script (redis-script.ts) does the same arithmetic inside Redis. docs/budgets.md explains it.
//
// A window of length W is cut into BUCKETS_PER_WINDOW buckets of W/N. A reservation is booked in the bucket of
// the store's clock when it is made; the window at time t counts the current bucket and the N before it, so it
// always spans at least W: in any interval of length W no more than the budget is admitted (no burst at a
// window edge), and spent capacity comes back at most W + W/N after it was spent (the price of that bound).

/** Buckets per window: the window's resolution. */
export const BUCKETS_PER_WINDOW = 60;

export interface WindowShape {
  readonly windowMs: number;
  readonly bucketMs: number;
  /** Buckets counted besides the current one (= BUCKETS_PER_WINDOW). */
  readonly back: number;
}

export function windowShape(windowMs: number): WindowShape {
  const bucketMs = Math.max(1, Math.floor(windowMs / BUCKETS_PER_WINDOW));
  return { windowMs, bucketMs, back: Math.ceil(windowMs / bucketMs) };
}

export const bucketOf = (s: WindowShape, nowMs: number): number => Math.floor(nowMs / s.bucketMs);

/** Drops buckets that left the window; returns units spent in it. */
export function spentIn(buckets: Map<number, number>, s: WindowShape, nowMs: number): number {
  const oldest = bucketOf(s, nowMs) - s.back;
  let spent = 0;
  for (const [b, v] of buckets) {
    if (b < oldest) buckets.delete(b);
    else spent += v;
  }
  return spent;
}

/**
 * Milliseconds until `amount` fits under `limit`, as spent buckets leave the window; undefined when it never
 * fits (more than the whole budget).
 */
export function retryAfterMs(buckets: ReadonlyMap<number, number>, s: WindowShape, nowMs: number, limit: number, amount: number): number | undefined {
  if (amount > limit) return undefined;
  let spent = 0;
  for (const v of buckets.values()) spent += v;
  if (spent + amount <= limit) return 0;
  const order = [...buckets.keys()].sort((a, b) => a - b);
  for (const b of order) {
    spent -= buckets.get(b)!;
    if (spent + amount <= limit) return Math.max(1, (b + s.back + 1) * s.bucketMs - nowMs);
  }
  return Math.max(1, (bucketOf(s, nowMs) + s.back + 1) * s.bucketMs - nowMs);
}
