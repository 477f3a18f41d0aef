import { createHash } from 'node:crypto';
import type { EgressPolicy } from '../../shared/policy/types.js';
import { WaitRoom } from '../long-poll.js';

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
  private readonly rooms = new Map<string, WaitRoom>();
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
    const changed = (): boolean => this.entries.get(namespace)?.etag !== etag;
    if (changed()) return Promise.resolve(true);
    let room = this.rooms.get(namespace);
    if (!room) this.rooms.set(namespace, (room = new WaitRoom()));
    const r = room;
    return r.wait(changed, timeoutMs, signal).finally(() => {
      // A namespace nobody waits on keeps no room (namespaces come and go).
      if (r.size === 0 && this.rooms.get(namespace) === r) this.rooms.delete(namespace);
    });
  }

  /** How many long polls are waiting (a gauge for /metrics). */
  waiting(): number {
    let n = 0;
    for (const r of this.rooms.values()) n += r.size;
    return n;
  }

  private put(namespace: string, e: NamespaceEntry): void {
    const prev = this.entries.get(namespace);
    if (prev?.etag === e.etag) return;
    this.entries.set(namespace, e);
    this.wake(namespace);
  }

  private wake(namespace: string): void {
    this.rooms.get(namespace)?.wake();
  }
}
