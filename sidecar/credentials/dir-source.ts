import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { keysOf, resolveCredential, type CredentialMaterial, type Unresolved } from '../../shared/credentials/material.js';
import { VertexTokenCache } from '../../shared/credentials/vertex-token.js';
import { errorMessage } from '../../shared/errors.js';
import type { Logger } from '../../shared/log.js';
import type { Credential } from '../../shared/policy/types.js';
import type { CredentialSource } from './source.js';

// Standalone credentials: `secretRef {name, key}` is the file DIR/<name>/<key>, the layout of a mounted
// Secret (whose kubelet swaps a `..data` symlink on update). Files are read into memory when a policy starts
// using them and re-read when they change: a watch on each Secret directory reacts at once, and a re-read
// every `pollMs` catches what a watch misses (symlink swaps, network file systems). A changed value is used
// by the next request; an unchanged one costs no more than the read. Values are never logged.

export interface DirSourceOptions {
  dir: string;
  log: Logger;
  /** Re-read interval; default 2 s. */
  pollMs?: number;
  now?: () => number;
}

interface FileState {
  /** undefined until read; null when absent or unreadable. */
  value?: string | null;
  /** Pipelines using it. */
  users: number;
}

export class DirCredentialSource implements CredentialSource {
  private readonly files = new Map<string, FileState>();
  private readonly watchers = new Map<string, FSWatcher>();
  private readonly waiters = new Set<() => void>();
  private readonly vertex: VertexTokenCache;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private reading: Promise<void> | undefined;
  private again = false;

  constructor(private readonly opts: DirSourceOptions) {
    this.vertex = new VertexTokenCache(opts.now);
  }

  private pathOf(name: string, key: string): string {
    // name and key are checked by the policy validator (no '/', no '..'), so this stays inside dir.
    return join(this.opts.dir, name, key);
  }

  use(credentials: readonly Credential[]): () => void {
    const paths = credentials.flatMap((c) => keysOf(c).map((k) => this.pathOf(c.secretRef.name, k)));
    for (const p of paths) {
      const f = this.files.get(p);
      if (f) f.users++;
      else this.files.set(p, { users: 1 });
    }
    for (const c of credentials) this.watchDir(c.secretRef.name);
    this.timer ??= setInterval(() => void this.refresh(), this.opts.pollMs ?? 2000).unref();
    void this.refresh();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      for (const p of paths) {
        const f = this.files.get(p);
        if (f && --f.users <= 0) this.files.delete(p);
      }
    };
  }

  get(c: Credential): CredentialMaterial | Unresolved | undefined {
    const values = new Map<string, string | null | undefined>();
    for (const k of keysOf(c)) {
      const f = this.files.get(this.pathOf(c.secretRef.name, k));
      if (!f || f.value === undefined) return undefined;
      values.set(k, f.value);
    }
    const r = resolveCredential(c, (k) => values.get(k) ?? undefined, this.vertex.mint);
    if ('error' in r && [...values.values()].some((v) => v === null)) {
      return { error: `file ${this.pathOf(c.secretRef.name, '…')} missing or unreadable (${r.error})` };
    }
    return r;
  }

  settled(c: Credential, signal: AbortSignal): Promise<void> {
    if (this.get(c) !== undefined || signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const check = (): void => {
        if (this.get(c) !== undefined || signal.aborted || this.closed) {
          this.waiters.delete(check);
          signal.removeEventListener('abort', check);
          resolve();
        }
      };
      this.waiters.add(check);
      signal.addEventListener('abort', check, { once: true });
    });
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
    for (const w of [...this.waiters]) w();
  }

  /** Re-reads every file in use; one pass at a time (a change during a pass triggers one more). */
  refresh(): Promise<void> {
    if (this.reading) {
      this.again = true;
      return this.reading;
    }
    this.reading = (async () => {
      do {
        this.again = false;
        await this.readAll();
      } while (this.again && !this.closed);
    })().finally(() => (this.reading = undefined));
    return this.reading;
  }

  private async readAll(): Promise<void> {
    const paths = [...this.files.keys()];
    await Promise.all(
      paths.map(async (p) => {
        let value: string | null;
        try {
          value = await readFile(p, 'utf8');
        } catch (err) {
          value = null;
          const f = this.files.get(p);
          if (f && f.value !== null) this.opts.log.warn({ file: p, err: (err as NodeJS.ErrnoException).code ?? errorMessage(err) }, 'credential file cannot be read; calls that need it are refused');
        }
        const f = this.files.get(p);
        if (!f || f.value === value) return;
        const first = f.value === undefined;
        f.value = value;
        if (value !== null && !first) this.opts.log.info({ file: p }, 'credential changed; the next request uses the new value');
      }),
    );
    this.vertex.retain([...this.files.values()].map((f) => (f.value ?? '').trim()));
    for (const w of [...this.waiters]) w();
  }

  private watchDir(name: string): void {
    const d = join(this.opts.dir, name);
    if (this.watchers.has(d)) return;
    try {
      const w = watch(d, { persistent: false }, () => void this.refresh());
      w.on('error', () => {
        w.close();
        this.watchers.delete(d);
      });
      this.watchers.set(d, w);
    } catch {
      // the directory does not exist yet: the periodic re-read finds it
    }
  }
}
