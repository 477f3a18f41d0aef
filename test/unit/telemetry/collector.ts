// An in-process OTLP/HTTP receiver for the tests: it accepts POST /v1/traces and /v1/metrics with protobuf
// (application/x-protobuf, decoded by proto-decoder.ts from the opentelemetry-proto definitions) or JSON bodies,
// gzipped or not, and keeps the spans and metric data points with their attributes flattened to plain values.
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { decode, loadSchema, type Schema } from './proto-decoder.js';

let schema: Schema | undefined;
/** The OTLP schema, read once from the vendored .proto files. */
export function otlpSchema(): Schema {
  return (schema ??= loadSchema(join(import.meta.dirname, '../../fixtures/opentelemetry-proto')));
}

/** An OTLP request body as the JSON mapping has it, whichever encoding it came in. */
export function otlpBody(path: string, contentType: string | undefined, contentEncoding: string | undefined, raw: Buffer): unknown {
  const bytes = contentEncoding === 'gzip' ? gunzipSync(raw) : raw;
  if (contentType === 'application/json') return JSON.parse(bytes.toString('utf8')) as unknown;
  if (contentType !== 'application/x-protobuf') throw new Error(`unexpected content-type ${String(contentType)}`);
  return decode(otlpSchema(), path === '/v1/traces' ? 'ExportTraceServiceRequest' : 'ExportMetricsServiceRequest', bytes);
}

export type Value = string | number | boolean | Value[];

interface AnyValue {
  stringValue?: string;
  intValue?: string;
  doubleValue?: number;
  boolValue?: boolean;
  arrayValue?: { values: AnyValue[] };
}
type KeyValues = { key: string; value: AnyValue }[];

function value(v: AnyValue): Value {
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.doubleValue !== undefined) return v.doubleValue;
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.arrayValue) return v.arrayValue.values.map(value);
  throw new Error(`unknown OTLP AnyValue ${JSON.stringify(v)}`);
}

export function attrs(kv: KeyValues | undefined): Record<string, Value> {
  const out: Record<string, Value> = {};
  for (const { key, value: v } of kv ?? []) out[key] = value(v);
  return out;
}

export interface ReceivedSpan {
  resource: Record<string, Value>;
  scope: { name: string; version: string };
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  traceState?: string;
  name: string;
  kind: number;
  start: bigint;
  end: bigint;
  attributes: Record<string, Value>;
  status: { code: number; message?: string };
}

export interface ReceivedPoint {
  resource: Record<string, Value>;
  metric: string;
  unit: string;
  type: 'histogram' | 'sum' | 'gauge';
  attributes: Record<string, Value>;
  /** Histogram count, or the sum/gauge value. */
  value: number;
  sum?: number;
  bucketCounts?: number[];
  bounds?: number[];
  monotonic?: boolean;
}

export interface Collector {
  url: string;
  spans: ReceivedSpan[];
  /** Data points of the latest metrics export only (exports are cumulative). */
  points: ReceivedPoint[];
  requests: { path: string; headers: IncomingHttpHeaders }[];
  close(): Promise<void>;
}

interface TracesBody {
  resourceSpans: {
    resource: { attributes: KeyValues };
    scopeSpans: { scope: { name: string; version: string }; spans: (Omit<ReceivedSpan, 'attributes' | 'resource' | 'scope' | 'start' | 'end'> & { attributes: KeyValues; startTimeUnixNano: string; endTimeUnixNano: string })[] }[];
  }[];
}

interface Point {
  attributes: KeyValues;
  count?: string;
  sum?: number;
  bucketCounts?: string[];
  explicitBounds?: number[];
  asInt?: string;
  asDouble?: number;
  startTimeUnixNano: string;
  timeUnixNano: string;
}
interface MetricsBody {
  resourceMetrics: {
    resource: { attributes: KeyValues };
    scopeMetrics: { metrics: { name: string; unit: string; histogram?: { dataPoints: Point[]; aggregationTemporality: number }; sum?: { dataPoints: Point[]; isMonotonic: boolean }; gauge?: { dataPoints: Point[] } }[] }[];
  }[];
}

export async function startCollector(): Promise<Collector> {
  const c: Omit<Collector, 'url' | 'close'> = { spans: [], points: [], requests: [] };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (d: Buffer) => chunks.push(d));
    req.on('end', () => {
      c.requests.push({ path: req.url ?? '', headers: req.headers });
      const type = req.headers['content-type'];
      if (req.method !== 'POST' || (type !== 'application/json' && type !== 'application/x-protobuf')) {
        res.writeHead(415).end();
        return;
      }
      const body = otlpBody(req.url ?? '', type, req.headers['content-encoding'], Buffer.concat(chunks));
      if (req.url === '/v1/traces') {
        for (const rs of (body as TracesBody).resourceSpans ?? []) {
          for (const ss of rs.scopeSpans ?? []) {
            for (const s of ss.spans ?? []) {
              const { attributes, startTimeUnixNano, endTimeUnixNano, status, ...rest } = s;
              // Protobuf leaves a status code at its default (UNSET, 0) out; JSON may write it.
              const st = { code: status?.code ?? 0, ...(status?.message !== undefined && { message: status.message }) };
              c.spans.push({ ...rest, status: st, resource: attrs(rs.resource.attributes), scope: ss.scope, attributes: attrs(attributes), start: BigInt(startTimeUnixNano), end: BigInt(endTimeUnixNano) });
            }
          }
        }
      } else if (req.url === '/v1/metrics') {
        const points: ReceivedPoint[] = [];
        for (const rm of (body as MetricsBody).resourceMetrics ?? []) {
          for (const sm of rm.scopeMetrics ?? []) {
            for (const m of sm.metrics ?? []) {
              const resource = attrs(rm.resource.attributes);
              if (m.histogram) {
                for (const p of m.histogram.dataPoints ?? []) {
                  points.push({ resource, metric: m.name, unit: m.unit, type: 'histogram', attributes: attrs(p.attributes), value: Number(p.count), sum: p.sum!, bucketCounts: p.bucketCounts!.map(Number), bounds: p.explicitBounds! });
                }
              }
              for (const [type, data] of [['sum', m.sum], ['gauge', m.gauge]] as const) {
                for (const p of data?.dataPoints ?? []) {
                  points.push({ resource, metric: m.name, unit: m.unit, type, attributes: attrs(p.attributes), value: p.asInt !== undefined ? Number(p.asInt) : p.asDouble!, ...(type === 'sum' && { monotonic: m.sum!.isMonotonic }) });
                }
              }
            }
          }
        }
        c.points = points;
      } else {
        res.writeHead(404).end();
        return;
      }
      // An empty ExportTrace/MetricsServiceResponse: no partial_success, in either encoding.
      res.writeHead(200, { 'content-type': type }).end(type === 'application/json' ? '{}' : '');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return Object.assign(c, {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((r) => server.close(() => r())),
  }) as Collector;
}

/** The points of `metric` whose attributes include `match`. */
export function points(c: Collector, metric: string, match: Record<string, Value> = {}): ReceivedPoint[] {
  return c.points.filter((p) => p.metric === metric && Object.entries(match).every(([k, v]) => p.attributes[k] === v));
}
