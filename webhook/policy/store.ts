import { createHash } from 'node:crypto';
import type { EgressPolicy } from '../../shared/policy/types.js';

// What the control plane currently serves per namespace, with an ETag per effective policy, and the waiting
// room for long polls: a waiter wakes the moment its namespace's entry changes.

export type NamespaceEntry =
  /** Opted in, with a good effective policy. `body` is exactly what GET /v1/policy sends. */
  | { kind: 'policy'; policy: EgressPolicy; body: string; etag: string }
  /** Opted in, but its EgressPolicy is rejected and this replica has no earlier good one: fail closed. */
  | { kind: 'unavailable'; message: string; etag: string };

/** Strong ETag of a body: quoted, 128 bits of SHA-256. */
export function etagOf(body: string): string {
  return `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`;
}

export class PolicyStore {
  private readonly entries = new Map<string, NamespaceEntry>();
  private readonly waiters = new Map<string, Set<() => void>>();
  private synced = false;

  /** True once the controller has seen every namespace and policy: before that, absence means nothing. */
  isSynced(): boolean {
    return this.synced;
  }

  markSynced(): void {
    this.synced = true;
  }

  /** undefined: the namespace is not opted in (or does not exist). */
  get(namespace: string): NamespaceEntry | undefined {
    return this.entries.get(namespace);
  }

  namespaces(): string[] {
    return [...this.entries.keys()];
  }

  setPolicy(namespace: string, policy: EgressPolicy): void {
    const body = JSON.stringify(policy);
    this.put(namespace, { kind: 'policy', policy, body, etag: etagOf(body) });
  }

  setUnavailable(namespace: string, message: string): void {
    this.put(namespace, { kind: 'unavailable', message, etag: etagOf(`unavailable\n${message}`) });
  }

  delete(namespace: string): void {
    if (!this.entries.delete(namespace)) return;
    this.wake(namespace);
  }

  /**
   * Resolves when the namespace's entry no longer has ETag `etag` (at once if it already differs), or after
   * `timeoutMs`, or when `signal` aborts. Resolves true when it changed.
   */
  waitForChange(namespace: string, etag: string, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    if (this.entries.get(namespace)?.etag !== etag) return Promise.resolve(true);
    return new Promise((resolve) => {
      let set = this.waiters.get(namespace);
      if (!set) this.waiters.set(namespace, (set = new Set()));
      const done = (changed: boolean): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        set.delete(wake);
        if (set.size === 0 && this.waiters.get(namespace) === set) this.waiters.delete(namespace);
        resolve(changed);
      };
      const wake = (): void => {
        if (this.entries.get(namespace)?.etag !== etag) done(true);
      };
      const onAbort = (): void => done(false);
      const timer = setTimeout(() => done(false), timeoutMs);
      signal?.addEventListener('abort', onAbort, { once: true });
      set.add(wake);
    });
  }

  /** How many long polls are waiting (a gauge for /metrics). */
  waiting(): number {
    let n = 0;
    for (const s of this.waiters.values()) n += s.size;
    return n;
  }

  private put(namespace: string, e: NamespaceEntry): void {
    const prev = this.entries.get(namespace);
    if (prev?.etag === e.etag) return;
    this.entries.set(namespace, e);
    this.wake(namespace);
  }

  private wake(namespace: string): void {
    const set = this.waiters.get(namespace);
    if (set) for (const w of [...set]) w();
  }
}
