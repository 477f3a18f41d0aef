// OTLP/HTTP with JSON bodies (the OTLP specification's `http/json` encoding, OTEL_EXPORTER_OTLP_PROTOCOL=http/json),
// and the span and metric shapes the proxy exports, which otlp-proto.ts encodes as protobuf (the default). The
// proxy exports one span per AI call and a few dozen metric series, so small pure encoders (no SDK, no protobuf
// runtime) are all it needs; docs/metrics.md says why in full.
// In OTLP/JSON, trace and span ids are hex strings, 64-bit integers are decimal strings, enums are numbers.

export type AttrValue = string | number | boolean | readonly string[];
export type Attributes = Readonly<Record<string, AttrValue | undefined>>;

interface AnyValue {
  stringValue?: string;
  intValue?: string;
  doubleValue?: number;
  boolValue?: boolean;
  arrayValue?: { values: AnyValue[] };
}

export interface KeyValue {
  key: string;
  value: AnyValue;
}

function anyValue(v: AttrValue): AnyValue {
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  if (typeof v === 'number') return Number.isSafeInteger(v) ? { intValue: String(v) } : { doubleValue: v };
  return { arrayValue: { values: v.map((s) => ({ stringValue: s })) } };
}

/** Attributes in OTLP's key/value list; undefined values are left out. */
export function attributes(a: Attributes): KeyValue[] {
  const out: KeyValue[] = [];
  for (const [key, v] of Object.entries(a)) if (v !== undefined) out.push({ key, value: anyValue(v) });
  return out;
}

export const SPAN_KIND_CLIENT = 3;
export const STATUS_UNSET = 0;
export const STATUS_ERROR = 2;
/** AggregationTemporality CUMULATIVE: every export carries totals since the proxy started. */
export const CUMULATIVE = 2;

export interface SpanData {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  /** The app's tracestate, forwarded and recorded. */
  traceState?: string;
  name: string;
  startUnixNano: bigint;
  endUnixNano: bigint;
  attributes: Attributes;
  status: { code: number; message?: string };
}

export interface Scope {
  name: string;
  version: string;
}

export function tracesBody(resource: Attributes, scope: Scope, spans: readonly SpanData[]): string {
  return JSON.stringify({
    resourceSpans: [
      {
        resource: { attributes: attributes(resource) },
        scopeSpans: [
          {
            scope,
            spans: spans.map((s) => ({
              traceId: s.traceId,
              spanId: s.spanId,
              ...(s.parentSpanId && { parentSpanId: s.parentSpanId }),
              ...(s.traceState && { traceState: s.traceState }),
              name: s.name,
              kind: SPAN_KIND_CLIENT,
              startTimeUnixNano: String(s.startUnixNano),
              endTimeUnixNano: String(s.endUnixNano),
              attributes: attributes(s.attributes),
              status: s.status.message ? s.status : { code: s.status.code },
            })),
          },
        ],
      },
    ],
  });
}

export interface HistogramPoint {
  attributes: Attributes;
  count: number;
  sum: number;
  min?: number;
  max?: number;
  /** Per-bucket (not cumulative) counts, one more than `bounds`. */
  bucketCounts: readonly number[];
  bounds: readonly number[];
}

export interface NumberPoint {
  attributes: Attributes;
  value: number;
}

export type MetricData =
  | { name: string; description: string; unit: string; kind: 'histogram'; points: readonly HistogramPoint[] }
  | { name: string; description: string; unit: string; kind: 'sum' | 'gauge'; points: readonly NumberPoint[] };

export function metricsBody(resource: Attributes, scope: Scope, metrics: readonly MetricData[], startUnixNano: bigint, nowUnixNano: bigint): string {
  const start = String(startUnixNano);
  const time = String(nowUnixNano);
  const number = (p: NumberPoint): Record<string, unknown> => ({
    attributes: attributes(p.attributes),
    startTimeUnixNano: start,
    timeUnixNano: time,
    ...(Number.isSafeInteger(p.value) ? { asInt: String(p.value) } : { asDouble: p.value }),
  });
  return JSON.stringify({
    resourceMetrics: [
      {
        resource: { attributes: attributes(resource) },
        scopeMetrics: [
          {
            scope,
            metrics: metrics.map((m) => {
              const head = { name: m.name, description: m.description, unit: m.unit };
              if (m.kind === 'histogram') {
                return {
                  ...head,
                  histogram: {
                    aggregationTemporality: CUMULATIVE,
                    dataPoints: m.points.map((p) => ({
                      attributes: attributes(p.attributes),
                      startTimeUnixNano: start,
                      timeUnixNano: time,
                      count: String(p.count),
                      sum: p.sum,
                      ...(p.min !== undefined && { min: p.min }),
                      ...(p.max !== undefined && { max: p.max }),
                      bucketCounts: p.bucketCounts.map(String),
                      explicitBounds: p.bounds,
                    })),
                  },
                };
              }
              if (m.kind === 'sum') return { ...head, sum: { aggregationTemporality: CUMULATIVE, isMonotonic: true, dataPoints: m.points.map(number) } };
              return { ...head, gauge: { dataPoints: m.points.map(number) } };
            }),
          },
        ],
      },
    ],
  });
}
