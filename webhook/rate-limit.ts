import { systemClock, type Clock } from '../shared/renewal.js';

// Token buckets, for the control plane's per-caller limits (certificate requests per ServiceAccount, reviews of
// unknown tokens per source address).

/** Token buckets per key: `burst` at once, refilled at `perSecond`. */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly burst: number,
    private readonly perSecond: number,
    private readonly clock: Clock = systemClock,
  ) {}

  /** 0 when allowed (and counted); otherwise the seconds to wait. */
  take(key: string): number {
    const now = this.clock.now();
    const b = this.buckets.get(key) ?? { tokens: this.burst, at: now };
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.perSecond);
    b.at = now;
    if (this.buckets.size > 50_000) this.buckets.clear(); // bounded memory; worst case a fresh burst
    this.buckets.set(key, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - b.tokens) / this.perSecond));
  }
}

