import { existsSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { pino } from 'pino';
import { Counter, type Registry } from 'prom-client';
import { UserError, errorMessage } from '../../shared/errors.js';
import type { Logger } from '../../shared/log.js';
import type { AuditDestination } from './config.js';
import type { AuditRecord } from './audit-record.js';
import type { AuditSink } from './types.js';

// Writes audit records as JSON lines, apart from the operational log: to a file (appended, batched like the
// log) or to stdout/stderr. On stdout the records share the operational log's stream (each line whole, never
// interleaved) and are told apart by their `schema` field. A file is opened synchronously at start, so a path
// the proxy cannot write (a read-only root filesystem, a missing mount) stops it there with the setting named,
// instead of records being dropped unseen; a write that fails later is counted and logged.

const BATCH_BYTES = 4096;
const FLUSH_MS = 1_000;
/** A failing audit file is logged at most this often. */
const WARN_EVERY_MS = 60_000;
const WRITE_ERRORS = 'aigress_audit_write_errors_total';
/** Records buffered for a file that cannot take them, at most: beyond, new ones are dropped (and counted). */
const MAX_BUFFERED = 16 * 1024 * 1024;

export interface Writable {
  write(line: string): unknown;
  flush?(): void;
  end?(): void;
}

export interface AuditSinkOptions {
  /** Where write errors are counted (aigress_audit_write_errors_total). */
  registry?: Registry;
  log?: Logger;
}

const code = (err: unknown): string | undefined => (err as NodeJS.ErrnoException).code;

/**
 * Creates the missing directories of `dir`, one level at a time. Not mkdirSync's `recursive`: on a filesystem
 * that answers ENOENT for a directory that cannot be made (/proc), Node 20's recursive mkdir loops forever.
 */
function makeDirs(dir: string): void {
  const missing: string[] = [];
  for (let d = dir; !existsSync(d); d = dirname(d)) {
    missing.push(d);
    if (dirname(d) === d) break;
  }
  for (const d of missing.reverse()) {
    try {
      mkdirSync(d);
    } catch (err) {
      if (code(err) !== 'EEXIST') throw err;
    }
  }
}

/** The file's descriptor, opened for appending (its directory created); a UserError naming the setting if not. */
function openAuditFile(dest: Extract<AuditDestination, { kind: 'file' }>): number {
  try {
    try {
      return openSync(dest.path, 'a');
    } catch (err) {
      if (code(err) !== 'ENOENT') throw err;
    }
    makeDirs(dirname(dest.path));
    return openSync(dest.path, 'a');
  } catch (err) {
    throw new UserError(`${dest.setting} ${dest.path}: cannot open the audit log for appending: ${code(err) ?? errorMessage(err)} (an injected proxy can write only under the audit volume the webhook mounts; docs/audit.md)`, 1);
  }
}

/** aigress_audit_write_errors_total, registered once per registry. */
export function auditWriteErrors(registry: Registry): Counter {
  const existing = registry.getSingleMetric(WRITE_ERRORS);
  if (existing) return existing as Counter;
  return new Counter({
    name: WRITE_ERRORS,
    help: 'Audit log file trouble: kind="write" a failed write (one or more records, retried), kind="dropped" a record dropped because the unwritten ones filled the buffer',
    labelNames: ['kind'],
    registers: [registry],
  });
}

export function auditSink(dest: AuditDestination, stdout?: Writable, o: AuditSinkOptions = {}): AuditSink {
  const boom =
    dest.kind === 'stdout'
      ? stdout
        ? undefined
        : pino.destination({ dest: 1, minLength: BATCH_BYTES, sync: false })
      : dest.kind === 'stderr'
        ? pino.destination({ dest: 2, sync: true })
        : pino.destination({ dest: openAuditFile(dest), minLength: BATCH_BYTES, maxLength: MAX_BUFFERED, sync: false });
  const w: Writable = boom ?? stdout!;
  if (boom && dest.kind === 'file') {
    const errors = o.registry ? auditWriteErrors(o.registry) : undefined;
    let warnedAt = -Infinity;
    // Without a listener a failed write would throw from the stream and end the process.
    boom.on('drop', () => errors?.inc({ kind: 'dropped' }));
    boom.on('error', (err: unknown) => {
      errors?.inc({ kind: 'write' });
      const now = Date.now();
      if (now - warnedAt < WARN_EVERY_MS) return;
      warnedAt = now;
      o.log?.warn({ path: dest.path, err: errorMessage(err) }, 'audit log write failed; records are being lost');
    });
  }
  const owned = boom !== undefined;
  const timer = owned && w.flush ? setInterval(() => w.flush!(), FLUSH_MS).unref() : undefined;
  return {
    write(record: AuditRecord) {
      w.write(`${JSON.stringify(record)}\n`);
    },
    async close() {
      if (timer) clearInterval(timer);
      if (!boom) return;
      await new Promise<void>((resolve) => {
        // Not for a file: sonic-boom's flushSync retries a failing write (ENOSPC, EIO) forever; end() writes
        // what is buffered asynchronously and reports a failure as an error.
        if (dest.kind !== 'file') {
          try {
            boom.flushSync();
          } catch {
            // a write in flight: end() below waits for it
          }
        }
        boom.once('close', () => resolve());
        boom.once('error', () => {
          boom.destroy();
          resolve();
        });
        boom.end();
      });
    },
  };
}
