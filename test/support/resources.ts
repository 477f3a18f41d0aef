import { readdirSync } from 'node:fs';
import { connect } from 'node:net';

// What a test process holds: open file descriptors (/proc/self/fd) and resident memory, so hostile and fault
// tests can assert that a storm left nothing behind. The proxy or control plane under test runs in this
// process, so its descriptors are counted here too.

export function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

export function rssMb(): number {
  return Math.round(process.memoryUsage().rss / 1e5) / 10;
}

/** Polls until the fd count is at most `limit`, or `ms` pass; returns the last count. */
export async function fdsSettle(limit: number, ms = 5_000): Promise<number> {
  const deadline = Date.now() + ms;
  let n = openFds();
  while (n > limit && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    n = openFds();
  }
  return n;
}

export interface StormOptions {
  /** Bytes the client sends before it goes away (none: a bare connect). */
  payload?: Buffer;
  /** How long the client stays after connecting (and sending) before it hangs up. */
  lingerMs?: number;
  /** `end` sends FIN and waits for the server's; `destroy` (default) closes at once, as a client that gives up. */
  close?: 'end' | 'destroy';
  /** Connections open at a time. */
  concurrency?: number;
}

/** Opens `n` TCP connections to 127.0.0.1:`port`, each sending `payload` and then hanging up. */
export async function connectionStorm(port: number, n: number, o: StormOptions = {}): Promise<void> {
  const concurrency = o.concurrency ?? 50;
  const one = (): Promise<void> =>
    new Promise<void>((resolve) => {
      const s = connect(port, '127.0.0.1', () => {
        if (o.payload) s.write(o.payload);
        setTimeout(() => (o.close === 'end' ? s.end() : s.destroy()), o.lingerMs ?? 0);
      });
      // With `end`, a server that never closes its side would leave this waiting: give up after a while.
      const guard = setTimeout(() => s.destroy(), (o.lingerMs ?? 0) + 2_000);
      s.on('close', () => {
        clearTimeout(guard);
        resolve();
      });
      s.on('error', () => undefined);
      s.resume();
    });
  for (let i = 0; i < n; i += concurrency) {
    await Promise.all(Array.from({ length: Math.min(concurrency, n - i) }, one));
  }
}
