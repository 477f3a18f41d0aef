import { parseDuration } from '../shared/policy/validate.js';
import { HttpRefusal } from './policy/http.js';
import type { RouteRequest } from './server.js';

// The long poll shared by GET /v1/policy and GET /v1/credentials: the `wait` parameter, a waiting room that
// wakes its waiters when what they wait on changes, and a wait that ends when the caller hangs up. A thousand
// proxies each hold one of these open all the time, so every wait must leave nothing behind when it ends
// (no timer, no abort listener, no socket listener, no waiter), whichever way it ends.

/** The longest a caller may ask to wait; a longer `wait` is cut to it. */
export const DEFAULT_MAX_WAIT_MS = 60_000;

/** `?wait=30s` as milliseconds, capped at `maxWaitMs`; 0 without it. A value that is not a duration is refused (400). */
export function waitParam(req: Pick<RouteRequest, 'url'>, maxWaitMs: number): number {
  const text = req.url.searchParams.get('wait');
  if (text === null) return 0;
  const ms = parseDuration(text);
  if (ms === undefined) throw new HttpRefusal(400, 'BadRequest', `wait must be a duration like 30s (got ${JSON.stringify(text)})`);
  return Math.min(ms, maxWaitMs);
}

/** Waiters that wake when told to and resolve once their own condition holds. */
export class WaitRoom {
  private readonly waiters = new Set<() => void>();

  /**
   * Resolves true when `changed()` holds (at once if it already does, else at a later `wake()`), false after
   * `timeoutMs` or when `signal` aborts.
   */
  wait(changed: () => boolean, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    if (changed()) return Promise.resolve(true);
    if (signal?.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = (result: boolean): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.waiters.delete(check);
        resolve(result);
      };
      const check = (): void => {
        if (changed()) done(true);
      };
      const onAbort = (): void => done(false);
      const timer = setTimeout(() => done(false), timeoutMs);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.add(check);
    });
  }

  /** Lets every waiter look again; those whose condition now holds resolve. */
  wake(): void {
    for (const w of [...this.waiters]) w();
  }

  /** Waiters still waiting. */
  get size(): number {
    return this.waiters.size;
  }
}

/**
 * Runs `wait` with a signal that aborts when the caller's connection closes, and again once `wait` is over (so
 * a waiter that lost a race is released at once instead of at its timeout). Resolves false when the caller is
 * gone (there is nobody to answer), true otherwise.
 */
export async function waitForCaller(req: Pick<RouteRequest, 'raw'>, wait: (signal: AbortSignal) => Promise<unknown>): Promise<boolean> {
  const socket = req.raw.socket;
  if (socket.destroyed) return false;
  const ctl = new AbortController();
  let gone = false;
  const onClose = (): void => {
    gone = true;
    ctl.abort();
  };
  socket.once('close', onClose);
  try {
    await wait(ctl.signal);
  } finally {
    socket.off('close', onClose);
    ctl.abort();
  }
  return !gone;
}
