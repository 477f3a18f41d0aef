// The audit log file: opened at start, so a path the proxy cannot write stops it with the setting and path named
// (exit 1) instead of dropping records unseen; records are appended as JSON lines; a write that fails later is
// counted in aigress_audit_write_errors_total.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';
import { UserError } from '../../../shared/errors.js';
import { createLogger } from '../../../shared/log.js';
import { createServices } from '../../../sidecar/proxy/services.js';
import { AUDIT_SCHEMA, type AuditRecord } from '../../../sidecar/telemetry/audit-record.js';
import { auditSink } from '../../../sidecar/telemetry/audit-sink.js';
import { telemetryConfig } from '../../../sidecar/telemetry/config.js';
import { createTelemetry } from '../../../sidecar/telemetry/create.js';
import { metric } from '../pipeline/harness.js';

const dir = mkdtempSync(join(tmpdir(), 'aigress-audit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const log = createLogger('test', { level: 'silent' });
const record = (n: number): AuditRecord => ({ schema: AUDIT_SCHEMA, time: new Date(n).toISOString(), traceId: String(n) }) as unknown as AuditRecord;

describe('audit log file', () => {
  // A regular file where the directory should be: unwritable even for root (a read-only root filesystem is EROFS).
  const blocked = join(dir, 'not-a-dir');
  writeFileSync(blocked, '');

  it('a path that cannot be opened stops the start, naming the flag and the path (exit 1)', async () => {
    const path = join(blocked, 'audit.jsonl');
    const err = await createTelemetry({ config: telemetryConfig({}, { auditLog: path }), identity: {}, registry: new Registry(), log }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as UserError).exitCode).toBe(1);
    expect((err as UserError).message).toMatch(new RegExp(`^--audit-log ${path.replace(/[/.-]/g, '\\$&')}: cannot open the audit log for appending: (ENOTDIR|EEXIST)`));
  });

  it('names AIGRESS_AUDIT_LOG when the path came from it, and the proxy services refuse to start', async () => {
    const path = join(blocked, 'sub', 'audit.jsonl');
    const err = await createServices({ registry: new Registry(), log, telemetry: telemetryConfig({ AIGRESS_AUDIT_LOG: path }) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as UserError).message).toContain(`AIGRESS_AUDIT_LOG ${path}: cannot open the audit log`);
  });

  it.runIf(process.platform === 'linux')('a directory that cannot be made is refused, not retried forever (mkdir on /proc answers ENOENT)', () => {
    expect(() => auditSink({ kind: 'file', path: '/proc/aigress-audit-test/audit.jsonl', setting: '--audit-log' })).toThrow(/^--audit-log \/proc\/aigress-audit-test\/audit\.jsonl: cannot open the audit log for appending: ENOENT/);
  });

  it('creates the directory and appends one JSON line per record', async () => {
    const path = join(dir, 'new', 'deeper', 'audit.jsonl');
    const sink = auditSink({ kind: 'file', path, setting: '--audit-log' });
    sink.write(record(1));
    sink.write(record(2));
    await sink.close();
    const again = auditSink({ kind: 'file', path, setting: '--audit-log' });
    again.write(record(3));
    await again.close();
    const lines = readFileSync(path, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { traceId: string });
    expect(lines.map((l) => l.traceId)).toEqual(['1', '2', '3']);
  });

  it('counts a write that fails later (and does not crash the proxy)', async () => {
    const registry = new Registry();
    // Opens fine; every write fails with ENOSPC.
    const sink = auditSink({ kind: 'file', path: '/dev/full', setting: '--audit-log' }, undefined, { registry, log });
    for (let i = 0; i < 200; i++) sink.write(record(i));
    await sink.close();
    expect(await metric(registry, 'aigress_audit_write_errors_total', { kind: 'write' })).toBeGreaterThan(0);
  });
});
