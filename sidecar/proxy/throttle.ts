// Log lines that a client can cause at will (one per connection) are throttled per key: the first one in each
// window is written, with how many like it were held back since the last; every event is still counted in
// the metrics. Without this, 15,000 handshake-only connections wrote 15,000 warnings.

export interface Throttled {
  /** Whether to log now; `suppressed` is how many were held back since the last logged one. */
  log: boolean;
  suppressed: number;
}

export class LogThrottle {
  private readonly last = new Map<string, { at: number; suppressed: number }>();

  constructor(
    private readonly windowMs: number,
    private readonly now: () => number = Date.now,
    private readonly maxKeys = 1_000,
  ) {}

  check(key: string): Throttled {
    const t = this.now();
    const e = this.last.get(key);
    if (e && t - e.at < this.windowMs) {
      e.suppressed++;
      return { log: false, suppressed: e.suppressed };
    }
    if (!e && this.last.size >= this.maxKeys) this.last.clear();
    this.last.set(key, { at: t, suppressed: 0 });
    return { log: true, suppressed: e?.suppressed ?? 0 };
  }
}
