import { pino } from 'pino';
import type { AuditDestination } from './config.js';
import type { AuditRecord } from './audit-record.js';
import type { AuditSink } from './types.js';

// Writes audit records as JSON lines, apart from the operational log: to a file (appended, batched like the
// log) or to stdout/stderr. On stdout the records share the operational log's stream (each line whole, never
// interleaved) and are told apart by their `schema` field.

const BATCH_BYTES = 4096;
const FLUSH_MS = 1_000;

export interface Writable {
  write(line: string): unknown;
  flush?(): void;
  end?(): void;
}

export function auditSink(dest: AuditDestination, stdout?: Writable): AuditSink {
  const w: Writable =
    dest.kind === 'stdout'
      ? (stdout ?? pino.destination({ dest: 1, minLength: BATCH_BYTES, sync: false }))
      : dest.kind === 'stderr'
        ? pino.destination({ dest: 2, sync: true })
        : pino.destination({ dest: dest.path, append: true, mkdir: true, minLength: BATCH_BYTES, sync: false });
  const owned = dest.kind !== 'stdout' || !stdout;
  const timer = owned && w.flush ? setInterval(() => w.flush!(), FLUSH_MS).unref() : undefined;
  return {
    write(record: AuditRecord) {
      w.write(`${JSON.stringify(record)}\n`);
    },
    async close() {
      if (timer) clearInterval(timer);
      if (!owned) return;
      await new Promise<void>((resolve) => {
        const boom = w as ReturnType<typeof pino.destination>;
        try {
          boom.flushSync();
        } catch {
          // a write in flight: end() below waits for it
        }
        boom.once('close', () => resolve());
        boom.once('error', () => resolve());
        boom.end();
      });
    },
  };
}
