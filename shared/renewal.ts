// Renewing short-lived certificates: the webhook's serving certificate and the proxy's leaf both renew at two
// thirds of their lifetime and retry with backoff, serving the current certificate meanwhile. Time comes from a
// Clock so that tests can move it forward instead of waiting.

export interface Timer {
  cancel(): void;
}

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): Timer;
}

/** Wall-clock time; timers do not keep the process alive (a server socket does that). */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    // setTimeout's limit is 2^31-1 ms (~24.8 days); longer delays would fire at once.
    const t = setTimeout(fn, Math.min(Math.max(0, ms), 2 ** 31 - 1));
    t.unref();
    return { cancel: () => clearTimeout(t) };
  },
};

export interface Validity {
  notBefore: Date;
  notAfter: Date;
}

/** The moment (ms since the epoch) to renew: two thirds into the validity window. */
export function renewalTime(v: Validity): number {
  const start = v.notBefore.getTime();
  return start + Math.floor(((v.notAfter.getTime() - start) * 2) / 3);
}

/** Delay before retry number `attempt` (1-based): exponential from `baseMs`, capped at `maxMs`. */
export function backoffDelay(attempt: number, baseMs = 1000, maxMs = 5 * 60_000): number {
  return Math.min(maxMs, baseMs * 2 ** Math.min(30, Math.max(0, attempt - 1)));
}

export interface RenewerOptions {
  clock: Clock;
  /** Gets a new certificate and starts serving it; resolves with its validity. */
  renew(): Promise<Validity>;
  /** Called on every failed attempt (count it, log it); the current certificate stays in use. */
  onFailure(err: unknown, attempt: number, retryInMs: number): void;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
}

/** Keeps one certificate fresh: renews at 2/3 of its lifetime, retries failures with backoff, forever until stopped. */
export class Renewer {
  private timer: Timer | undefined;
  private failures = 0;
  private stopped = false;
  private running = false;
  /** renewNow() arrived while an attempt was running: run again right after it. */
  private again = false;

  constructor(private readonly opts: RenewerOptions) {}

  /** Starts the cycle for the certificate now in use. */
  start(current: Validity): void {
    this.schedule(renewalTime(current) - this.opts.clock.now());
  }

  /** Renews now (e.g. the names to cover changed), then carries on the cycle. */
  renewNow(): void {
    this.schedule(0);
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer?.cancel();
    this.timer = this.opts.clock.setTimeout(() => void this.attempt(), Math.max(0, delayMs));
  }

  private async attempt(): Promise<void> {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    this.again = false;
    try {
      const v = await this.opts.renew();
      this.failures = 0;
      this.schedule(this.again ? 0 : renewalTime(v) - this.opts.clock.now());
    } catch (err) {
      this.failures++;
      const retry = backoffDelay(this.failures, this.opts.backoffBaseMs, this.opts.backoffMaxMs);
      this.opts.onFailure(err, this.failures, retry);
      this.schedule(this.again ? 0 : retry);
    } finally {
      this.running = false;
    }
  }
}
