// The hand-written OTLP protobuf encoder against the opentelemetry-proto schema: bodies are decoded by a decoder
// that takes its field numbers and types from the vendored .proto files, and must say exactly what the JSON
// encoding of the same data says. Then the exporter's wire behaviour: content types, gzip, per-signal protocol.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { createCA, issueLeaf, loadCA } from '../../../shared/pki.js';
import { Registry, Counter } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../../shared/log.js';
import { telemetryConfig } from '../../../sidecar/telemetry/config.js';
import { OtlpExporter } from '../../../sidecar/telemetry/exporter.js';
import { metricsBody, tracesBody, type MetricData, type SpanData } from '../../../sidecar/telemetry/otlp-json.js';
import { metricsProto, tracesProto } from '../../../sidecar/telemetry/otlp-proto.js';
import { otlpBody, otlpSchema } from './collector.js';
import { decode } from './proto-decoder.js';

const RESOURCE = { 'service.name': 'aigress-proxy', 'k8s.pod.name': 'chat-0', 'aigress.empty': '' };
const SCOPE = { name: 'aigress', version: '0.1.0' };

const SPANS: SpanData[] = [
  {
    traceId: '0af7651916cd43dd8448eb211c80319c',
    spanId: 'b7ad6b7169203331',
    parentSpanId: '00f067aa0ba902b7',
    traceState: 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7',
    name: 'chat gpt-4o',
    startUnixNano: 1_764_800_000_123_456_789n,
    endUnixNano: 1_764_800_001_987_654_321n,
    attributes: {
      'gen_ai.request.model': 'gpt-4o',
      'gen_ai.usage.input_tokens': 1117,
      'zero.int': 0,
      'negative.int': -42,
      'big.int': Number.MAX_SAFE_INTEGER,
      'aigress.cost_usd': 0.0019725,
      'aigress.stream': false,
      'flag.true': true,
      'empty.string': '',
      'gen_ai.response.finish_reasons': ['stop', 'length'],
      'unicode': 'modèle – 模型',
      'left.out': undefined,
    },
    status: { code: 0 },
  },
  {
    traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
    spanId: '00000000000000ff',
    name: 'chat',
    startUnixNano: 1n,
    endUnixNano: 2n,
    attributes: { 'error.type': '403' },
    status: { code: 2, message: 'aigress: model gpt-5 is not allowed by policy team-a/default' },
  },
];

const METRICS: MetricData[] = [
  {
    name: 'gen_ai.client.operation.duration',
    description: 'GenAI operation duration.',
    unit: 's',
    kind: 'histogram',
    points: [
      { attributes: { 'gen_ai.operation.name': 'chat', 'server.port': 443 }, count: 3, sum: 1.75, min: 0.25, max: 1, bucketCounts: [0, 2, 1, 0], bounds: [0.01, 0.5, 1] },
      // sum, min and max are proto3 `optional`: a 0 must still be there.
      { attributes: {}, count: 1, sum: 0, min: 0, max: 0, bucketCounts: [1, 0], bounds: [0.01] },
    ],
  },
  { name: 'aigress_requests_total', description: 'Requests.', unit: '1', kind: 'sum', points: [{ attributes: { decision: 'allow' }, value: 7 }, { attributes: { decision: 'deny' }, value: 0 }] },
  { name: 'aigress_estimated_cost_usd_total', description: 'Cost.', unit: 'USD', kind: 'sum', points: [{ attributes: {}, value: 0.125 }] },
  { name: 'aigress_connections_open', description: 'Open.', unit: '1', kind: 'gauge', points: [{ attributes: {}, value: 0 }, { attributes: { x: 'y' }, value: -3 }] },
];

/**
 * Proto3 leaves scalars at their default out, where JSON may write them: drop those from both sides before
 * comparing. Oneof members (an attribute's value, a data point's value) and `optional` fields keep their zeros.
 */
const PRESENCE = new Set(['stringValue', 'intValue', 'doubleValue', 'boolValue', 'asInt', 'asDouble', 'sum', 'min', 'max']);
function prune(v: unknown, key = ''): unknown {
  // A repeated field keeps every element, zeros too; an empty one is not on the wire at all.
  if (Array.isArray(v)) return v.length === 0 ? undefined : v.map((x) => (x !== null && typeof x === 'object' ? prune(x) : x));
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      const p = prune(x, k);
      if (p !== undefined) out[k] = p;
    }
    return out;
  }
  if (!PRESENCE.has(key) && (v === 0 || v === '' || v === false || v === '0')) return undefined;
  return v;
}

describe('OTLP protobuf encoding, checked against opentelemetry-proto', () => {
  it('ExportTraceServiceRequest decodes to what the JSON encoding says, field for field', () => {
    const proto = decode(otlpSchema(), 'ExportTraceServiceRequest', tracesProto(RESOURCE, SCOPE, SPANS));
    const json = JSON.parse(tracesBody(RESOURCE, SCOPE, SPANS)) as unknown;
    expect(prune(proto)).toEqual(prune(json));
    // The values that are easy to get wrong, read from the decoded protobuf itself.
    const span = (proto as { resourceSpans: { scopeSpans: { spans: Record<string, unknown>[] }[] }[] }).resourceSpans[0]!.scopeSpans[0]!.spans[0]!;
    expect(span).toMatchObject({ traceId: SPANS[0]!.traceId, spanId: SPANS[0]!.spanId, parentSpanId: '00f067aa0ba902b7', kind: 3, startTimeUnixNano: '1764800000123456789', endTimeUnixNano: '1764800001987654321' });
    const attrs = Object.fromEntries((span.attributes as { key: string; value: unknown }[]).map((kv) => [kv.key, kv.value]));
    expect(attrs['negative.int']).toEqual({ intValue: '-42' });
    expect(attrs['zero.int']).toEqual({ intValue: '0' });
    expect(attrs['big.int']).toEqual({ intValue: String(Number.MAX_SAFE_INTEGER) });
    expect(attrs['aigress.stream']).toEqual({ boolValue: false });
    expect(attrs['empty.string']).toEqual({ stringValue: '' });
    expect(attrs['aigress.cost_usd']).toEqual({ doubleValue: 0.0019725 });
    expect(attrs['unicode']).toEqual({ stringValue: 'modèle – 模型' });
    expect(attrs['gen_ai.response.finish_reasons']).toEqual({ arrayValue: { values: [{ stringValue: 'stop' }, { stringValue: 'length' }] } });
    expect('left.out' in attrs).toBe(false);
  });

  it('ExportMetricsServiceRequest decodes to what the JSON encoding says, zeros of optional and oneof fields kept', () => {
    const proto = decode(otlpSchema(), 'ExportMetricsServiceRequest', metricsProto(RESOURCE, SCOPE, METRICS, 10n, 20n));
    const json = JSON.parse(metricsBody(RESOURCE, SCOPE, METRICS, 10n, 20n)) as unknown;
    expect(prune(proto)).toEqual(prune(json));
    const metrics = (proto as { resourceMetrics: { scopeMetrics: { metrics: Record<string, { dataPoints: Record<string, unknown>[] } & Record<string, unknown>>[] }[] }[] }).resourceMetrics[0]!.scopeMetrics[0]!.metrics;
    expect(metrics[0]!.histogram!.dataPoints[1]).toMatchObject({ count: '1', sum: 0, min: 0, max: 0, bucketCounts: ['1', '0'], explicitBounds: [0.01] });
    expect(metrics[0]!.histogram!.aggregationTemporality).toBe(2);
    expect(metrics[1]!.sum).toMatchObject({ aggregationTemporality: 2, isMonotonic: true });
    expect(metrics[1]!.sum!.dataPoints[1]).toMatchObject({ asInt: '0' });
    expect(metrics[2]!.sum!.dataPoints[0]).toMatchObject({ asDouble: 0.125 });
    expect(metrics[3]!.gauge!.dataPoints.map((p) => p.asInt)).toEqual(['0', '-3']);
  });

  it('the decoder is strict: a byte in the wrong field is an error, not a silent default', () => {
    const good = tracesProto(RESOURCE, SCOPE, SPANS);
    // Field 1 (resource_spans, length-delimited) re-tagged as field 2, which ExportTraceServiceRequest lacks.
    const bad = Buffer.from(good);
    bad[0] = (2 << 3) | 2;
    expect(() => decode(otlpSchema(), 'ExportTraceServiceRequest', bad)).toThrow(/unknown field number 2/);
    expect(() => decode(otlpSchema(), 'ExportTraceServiceRequest', good.subarray(0, good.length - 3))).toThrow(/truncated/);
  });
});

interface Seen {
  path: string;
  headers: IncomingHttpHeaders;
  body: unknown;
}

async function receiver(): Promise<{ url: string; seen: Seen[]; close(): Promise<void> }> {
  const seen: Seen[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({ path: req.url ?? '', headers: req.headers, body: otlpBody(req.url ?? '', req.headers['content-type'], req.headers['content-encoding'], Buffer.concat(chunks)) });
      res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, seen, close: () => new Promise<void>((r) => server.close(() => r())) };
}

describe('OTLP exporter on the wire', () => {
  it('POSTs application/x-protobuf by default; http/json and gzip per signal as configured', async () => {
    const r = await receiver();
    const registry = new Registry();
    new Counter({ name: 'aigress_test_total', help: 'A counter.', registers: [registry] }).inc(5);
    const log = createLogger('test', { level: 'silent' });
    const run = async (env: Record<string, string>): Promise<Seen[]> => {
      r.seen.length = 0;
      const e = new OtlpExporter({ config: telemetryConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: r.url, ...env }).otlp!, resource: RESOURCE, registry, log });
      e.span(SPANS[0]!);
      await e.close();
      return [...r.seen].sort((a, b) => a.path.localeCompare(b.path));
    };
    const spanIds = (s: Seen): string[] => (s.body as { resourceSpans: { scopeSpans: { spans: { spanId: string }[] }[] }[] }).resourceSpans[0]!.scopeSpans[0]!.spans.map((x) => x.spanId);
    const counter = (s: Seen): unknown =>
      (s.body as { resourceMetrics: { scopeMetrics: { metrics: { name: string; sum?: { dataPoints: { asInt?: string }[] } }[] }[] }[] }).resourceMetrics[0]!.scopeMetrics[0]!.metrics.find((m) => m.name === 'aigress_test_total')?.sum?.dataPoints[0]?.asInt;

    const [metrics, traces] = await run({});
    expect(traces!.path).toBe('/v1/traces');
    expect(traces!.headers['content-type']).toBe('application/x-protobuf');
    expect(traces!.headers['content-encoding']).toBeUndefined();
    expect(spanIds(traces!)).toEqual([SPANS[0]!.spanId]);
    expect(metrics!.headers['content-type']).toBe('application/x-protobuf');
    expect(counter(metrics!)).toBe('5');

    const [m2, t2] = await run({ OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/json', OTEL_EXPORTER_OTLP_COMPRESSION: 'gzip', OTEL_EXPORTER_OTLP_METRICS_HEADERS: 'authorization=Bearer%20t0k' });
    expect(t2!.headers).toMatchObject({ 'content-type': 'application/json', 'content-encoding': 'gzip' });
    expect(t2!.headers.authorization).toBeUndefined();
    expect(spanIds(t2!)).toEqual([SPANS[0]!.spanId]);
    expect(m2!.headers).toMatchObject({ 'content-type': 'application/x-protobuf', 'content-encoding': 'gzip', authorization: 'Bearer t0k' });
    expect(counter(m2!)).toBe('5');
    await r.close();
  });

  it('https with OTEL_EXPORTER_OTLP_CERTIFICATE as the trusted root and a client certificate for mutual TLS', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'aigress-otlp-tls-'));
    const root = await createCA('otlp test root', 1);
    const rootCa = await loadCA(root.certPem, root.keyPem);
    const server = await issueLeaf(rootCa, { dnsNames: ['localhost'] });
    const client = await issueLeaf(rootCa, { dnsNames: ['aigress-proxy'], usage: 'client' });
    const file = (name: string, text: string): string => (writeFileSync(join(dir, name), text), join(dir, name));
    const seen: { path: string; client?: string }[] = [];
    const https = createHttpsServer({ cert: server.certPem, key: server.keyPem, ca: root.certPem, requestCert: true, rejectUnauthorized: true }, (req, res) => {
      req.resume();
      req.on('end', () => {
        const peer = (req.socket as TLSSocket).getPeerCertificate();
        seen.push({ path: req.url ?? '', ...(peer.subject?.CN && { client: String(peer.subject.CN) }) });
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((r) => https.listen(0, '127.0.0.1', r));
    const port = (https.address() as { port: number }).port;
    const env = {
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `https://localhost:${port}/v1/traces`,
      OTEL_EXPORTER_OTLP_CERTIFICATE: file('ca.pem', root.certPem),
      OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: file('tls.crt', client.certPem),
      OTEL_EXPORTER_OTLP_CLIENT_KEY: file('tls.key', client.keyPem),
    };
    const log = createLogger('test', { level: 'silent' });
    const e = new OtlpExporter({ config: telemetryConfig(env).otlp!, resource: {}, registry: new Registry(), log });
    e.span(SPANS[1]!);
    await e.close();
    // Without the client certificate the server refuses the handshake: nothing arrives.
    const { OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: _c, OTEL_EXPORTER_OTLP_CLIENT_KEY: _k, ...noClient } = env;
    const e2 = new OtlpExporter({ config: telemetryConfig(noClient).otlp!, resource: {}, registry: new Registry(), log });
    e2.span(SPANS[1]!);
    await e2.close();
    await new Promise<void>((r) => https.close(() => r()));
    expect(seen).toEqual([{ path: '/v1/traces', client: 'aigress-proxy' }]);
  });

  it('names the variable when a TLS file cannot be read', () => {
    const config = telemetryConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'https://c:4318', OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE: '/nonexistent/ca.pem' }).otlp!;
    expect(() => new OtlpExporter({ config, resource: {}, registry: new Registry(), log: createLogger('test', { level: 'silent' }) })).toThrow(
      /^OTEL_EXPORTER_OTLP_CERTIFICATE \(or OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE\) \/nonexistent\/ca.pem: cannot read it: ENOENT/,
    );
  });
});
