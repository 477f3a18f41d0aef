import { describe, expect, it } from 'vitest';
import { backoffDelay, renewalTime, Renewer, type Validity } from '../../../shared/renewal.js';
import { ManualClock } from '../../support/clock.js';

const H = 3_600_000;
const flush = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('renewal timing', () => {
  it('renews two thirds into the validity window', () => {
    const v = { notBefore: new Date(0), notAfter: new Date(24 * H) };
    expect(renewalTime(v)).toBe(16 * H);
    expect(renewalTime({ notBefore: new Date(1000), notAfter: new Date(1000 + 3 * H) })).toBe(1000 + 2 * H);
  });

  it('backs off exponentially up to a cap', () => {
    expect([1, 2, 3, 4].map((a) => backoffDelay(a, 1000, 5000))).toEqual([1000, 2000, 4000, 5000]);
    expect(backoffDelay(100, 1000, 300_000)).toBe(300_000);
  });
});

describe('Renewer', () => {
  it('keeps the old certificate through failures, retries with backoff, and resumes the cycle on success', async () => {
    const clock = new ManualClock(0);
    let failNext = 3;
    let current: Validity = { notBefore: new Date(0), notAfter: new Date(3 * H) };
    const failures: Array<[number, number]> = [];
    const r = new Renewer({
      clock,
      backoffBaseMs: 1000,
      renew: async () => {
        if (failNext > 0) {
          failNext--;
          throw new Error('issuer unreachable');
        }
        current = { notBefore: new Date(clock.now()), notAfter: new Date(clock.now() + 3 * H) };
        return current;
      },
      onFailure: (_e, attempt, retry) => failures.push([attempt, retry]),
    });
    r.start(current);
    expect(clock.pending()).toEqual([2 * H]);
    await clock.advance(2 * H, flush);
    expect(failures).toEqual([[1, 1000]]);
    expect(current.notAfter.getTime()).toBe(3 * H); // still the old one
    await clock.advance(1000 + 2000, flush);
    expect(failures).toEqual([[1, 1000], [2, 2000], [3, 4000]]);
    await clock.advance(4000, flush);
    expect(current.notBefore.getTime()).toBe(2 * H + 7000);
    expect(clock.pending()).toEqual([2 * H]); // next renewal two thirds into the new one
    r.stop();
    expect(clock.pending()).toEqual([]);
  });
});
