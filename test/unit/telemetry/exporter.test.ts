// The exporter never fails a call: a collector that is down or answers errors costs a log line a minute.
import { createServer } from 'node:http';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { telemetryConfig } from '../../../sidecar/telemetry/config.js';
import { OtlpExporter } from '../../../sidecar/telemetry/exporter.js';
import type { SpanData } from '../../../sidecar/telemetry/otlp-json.js';

function span(i: number): SpanData {
  return { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: `00f067aa0ba902${String(i).padStart(2, '0')}`, name: 'chat m', startUnixNano: 1n, endUnixNano: 2n, attributes: {}, status: { code: 0 } };
}

describe('OTLP exporter failures', () => {
  it('drops what a failing collector does not take, warns once, and keeps going', async () => {
    const lines: Record<string, unknown>[] = [];
    const log = pino({ level: 'warn' }, new Writable({ write: (c: Buffer, _e, cb) => (lines.push(JSON.parse(c.toString()) as Record<string, unknown>), cb()) }));
    const server = createServer((q, s) => (q.resume(), q.on('end', () => s.writeHead(503).end())));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://user:pw@127.0.0.1:${(server.address() as { port: number }).port}`;
    const config = telemetryConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: url, OTEL_BSP_MAX_QUEUE_SIZE: '3', OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '10' }).otlp!;
    const e = new OtlpExporter({ config, resource: {}, registry: new Registry(), log });
    for (let i = 0; i < 5; i++) e.span(span(i));
    expect(e.dropped).toBe(2);
    await e.flush();
    await e.flush();
    await e.close();
    await new Promise<void>((r) => server.close(() => r()));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ msg: 'OTLP export failed; telemetry dropped', err: 'HTTP 503' });
    expect(String(lines[0]!.endpoint)).not.toContain('pw');
    // A collector that is gone: no throw, no hang.
    const gone = new OtlpExporter({ config: { ...config, traces: { ...config.traces!, url: new URL(url.replace(/:\d+$/, ':1') + '/v1/traces') } }, resource: {}, registry: new Registry(), log });
    gone.span(span(9));
    await gone.close();
  });
});
