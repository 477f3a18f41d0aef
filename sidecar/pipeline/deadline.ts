// Every processor call runs under a deadline and the exchange's abort signal. A synchronous answer is taken as
// it is (no promise, no timer: the common built-in processors cost nothing extra); only a pending promise is
// raced against the timer and the signal.

/** A processor's call did not finish in time, or the exchange was aborted while it ran. */
export class StepTimeout extends Error {
  constructor(readonly timeoutMs: number) {
    super(`no answer within ${timeoutMs} ms`);
    this.name = 'StepTimeout';
  }
}

export class StepAborted extends Error {
  constructor() {
    super('the exchange was aborted');
    this.name = 'StepAborted';
  }
}

const isThenable = <T>(v: T | Promise<T>): v is Promise<T> => typeof (v as { then?: unknown } | null)?.then === 'function';

/**
 * Calls `fn`; returns its value, or (when it returns a promise) a promise that settles with it, or rejects with
 * StepTimeout after `timeoutMs`, or StepAborted when the signal (`signalOf`, or its `.signal`) fires. A throw from `fn` propagates as is.
 */
export function withDeadline<T>(fn: () => T | Promise<T>, timeoutMs: number, signalOf: AbortSignal | { readonly signal: AbortSignal }): T | Promise<T> {
  const v = fn();
  if (!isThenable(v)) return v;
  // Asked for only here (given the exchange): it makes its AbortSignal on first use, and synchronous steps
  // never need one.
  const signal = signalOf instanceof AbortSignal ? signalOf : signalOf.signal;
  return new Promise<T>((resolve, reject) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
    };
    const onAbort = (): void => {
      done();
      reject(new StepAborted());
    };
    const timer = setTimeout(() => {
      done();
      reject(new StepTimeout(timeoutMs));
    }, timeoutMs);
    if (signal.aborted) {
      onAbort();
      return;
    }
    signal.addEventListener('abort', onAbort, { once: true });
    v.then(
      (x) => {
        done();
        resolve(x);
      },
      (err: unknown) => {
        done();
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}

export { isThenable };
