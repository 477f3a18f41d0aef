import type { Clock, Timer } from '../../shared/renewal.js';

/** A clock that moves only when told; due timers fire in time order as it passes them. */
export class ManualClock implements Clock {
  private timers: Array<{ at: number; fn: () => void; id: number }> = [];
  private nextId = 0;

  constructor(private t = Date.now()) {}

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): Timer {
    const id = this.nextId++;
    this.timers.push({ at: this.t + Math.max(0, ms), fn, id });
    return { cancel: () => (this.timers = this.timers.filter((x) => x.id !== id)) };
  }

  /** Pending timers, as delays from now (for assertions about what is scheduled). */
  pending(): number[] {
    return this.timers.map((x) => x.at - this.t).sort((a, b) => a - b);
  }

  /**
   * Moves time forward by `ms`, firing due timers in order. Between timers it lets pending I/O and promises
   * run (`settle`), so async work a timer starts can finish and schedule the next one.
   */
  async advance(ms: number, settle: () => Promise<void> = tick): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      this.timers.sort((a, b) => a.at - b.at || a.id - b.id);
      const next = this.timers[0];
      if (!next || next.at > end) break;
      this.timers.shift();
      this.t = Math.max(this.t, next.at);
      next.fn();
      await settle();
    }
    this.t = end;
    await settle();
  }
}

const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 20));
