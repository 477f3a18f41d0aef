import { attributes, SPAN_KIND_CLIENT, CUMULATIVE, type Attributes, type KeyValue, type MetricData, type NumberPoint, type Scope, type SpanData } from './otlp-json.js';

// OTLP/HTTP with protobuf bodies (`http/protobuf`, the OTLP specification's default encoding): the same spans and
// metrics as otlp-json.ts, encoded by hand as ExportTraceServiceRequest and ExportMetricsServiceRequest. Only the
// fields the proxy sets are written; the field numbers are those of opentelemetry-proto v1 (trace.proto,
// metrics.proto, common.proto, resource.proto), checked in test/unit/telemetry/otlp-proto.test.ts by a decoder
// that reads them from copies of those files. Proto3 rules: a scalar at its default is left out, except inside a
// oneof (an attribute's "" or 0, a data point's 0) and for `optional` fields, whose presence is meaningful.

const VARINT = 0;
const I64 = 1;
const LEN = 2;

/** A message being encoded: pieces are concatenated once, at the end. */
class Message {
  private readonly parts: Buffer[] = [];
  private size = 0;

  private push(b: Buffer): void {
    this.parts.push(b);
    this.size += b.length;
  }

  private tag(field: number, wire: number): void {
    this.push(varint(BigInt((field << 3) | wire)));
  }

  uint(field: number, v: number | bigint): this {
    if (v === 0 || v === 0n) return this;
    return this.uintAlways(field, v);
  }

  /** int64/uint64/enum/bool as a varint, written even at 0 (oneof members). */
  uintAlways(field: number, v: number | bigint | boolean): this {
    this.tag(field, VARINT);
    const n = typeof v === 'boolean' ? (v ? 1n : 0n) : BigInt(v);
    // Negative int64: two's complement in 64 bits, which makes a 10-byte varint.
    this.push(varint(n < 0n ? BigInt.asUintN(64, n) : n));
    return this;
  }

  bool(field: number, v: boolean): this {
    return v ? this.uintAlways(field, true) : this;
  }

  /** fixed64 (times, counts) and sfixed64 (as_int): 8 bytes little-endian. */
  fixed64(field: number, v: bigint, always = false): this {
    if (v === 0n && !always) return this;
    this.tag(field, I64);
    const b = Buffer.allocUnsafe(8);
    b.writeBigUInt64LE(BigInt.asUintN(64, v));
    this.push(b);
    return this;
  }

  double(field: number, v: number, always = false): this {
    if (v === 0 && !Object.is(v, -0) && !always) return this;
    this.tag(field, I64);
    const b = Buffer.allocUnsafe(8);
    b.writeDoubleLE(v);
    this.push(b);
    return this;
  }

  bytes(field: number, b: Buffer, always = false): this {
    if (b.length === 0 && !always) return this;
    this.tag(field, LEN);
    this.push(varint(BigInt(b.length)));
    this.push(b);
    return this;
  }

  string(field: number, s: string | undefined, always = false): this {
    if (s === undefined) return this;
    return this.bytes(field, Buffer.from(s, 'utf8'), always);
  }

  /** An embedded message, written even when empty (its presence can matter: an empty Status, an empty AnyValue). */
  message(field: number, m: Message): this {
    return this.bytes(field, m.finish(), true);
  }

  /** A packed repeated fixed64 or double. */
  packed(field: number, values: readonly number[], kind: 'fixed64' | 'double'): this {
    if (values.length === 0) return this;
    const b = Buffer.allocUnsafe(values.length * 8);
    values.forEach((v, i) => (kind === 'double' ? b.writeDoubleLE(v, i * 8) : b.writeBigUInt64LE(BigInt(v), i * 8)));
    return this.bytes(field, b);
  }

  finish(): Buffer {
    return this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.size);
  }
}

function varint(n: bigint): Buffer {
  const out: number[] = [];
  let v = n;
  while (v > 0x7fn) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
  return Buffer.from(out);
}

// common.proto: AnyValue { string_value = 1; bool_value = 2; int_value = 3; double_value = 4; array_value = 5 },
// ArrayValue { values = 1 }, KeyValue { key = 1; value = 2 }, InstrumentationScope { name = 1; version = 2 }.
function anyValue(v: KeyValue['value']): Message {
  const m = new Message();
  if (v.stringValue !== undefined) m.string(1, v.stringValue, true);
  else if (v.boolValue !== undefined) m.uintAlways(2, v.boolValue);
  else if (v.intValue !== undefined) m.uintAlways(3, BigInt(v.intValue));
  else if (v.doubleValue !== undefined) m.double(4, v.doubleValue, true);
  else if (v.arrayValue) {
    const a = new Message();
    for (const x of v.arrayValue.values) a.message(1, anyValue(x));
    m.message(5, a);
  }
  return m;
}

function keyValues(m: Message, field: number, a: Attributes): void {
  for (const kv of attributes(a)) m.message(field, new Message().string(1, kv.key).message(2, anyValue(kv.value)));
}

// resource.proto: Resource { attributes = 1 }.
function resourceMessage(a: Attributes): Message {
  const r = new Message();
  keyValues(r, 1, a);
  return r;
}

const scopeMessage = (s: Scope): Message => new Message().string(1, s.name).string(2, s.version);
const hex = (s: string | undefined): Buffer => (s ? Buffer.from(s, 'hex') : Buffer.alloc(0));

/**
 * collector/trace/v1: ExportTraceServiceRequest { resource_spans = 1 }; trace.proto: ResourceSpans { resource = 1;
 * scope_spans = 2 }, ScopeSpans { scope = 1; spans = 2 }, Span { trace_id = 1; span_id = 2; trace_state = 3;
 * parent_span_id = 4; name = 5; kind = 6; start_time_unix_nano = 7 (fixed64); end_time_unix_nano = 8 (fixed64);
 * attributes = 9; status = 15 }, Status { message = 2; code = 3 }.
 */
export function tracesProto(resource: Attributes, scope: Scope, spans: readonly SpanData[]): Buffer {
  const ss = new Message().message(1, scopeMessage(scope));
  for (const s of spans) {
    const span = new Message()
      .bytes(1, hex(s.traceId))
      .bytes(2, hex(s.spanId))
      .string(3, s.traceState)
      .bytes(4, hex(s.parentSpanId))
      .string(5, s.name)
      .uint(6, SPAN_KIND_CLIENT)
      .fixed64(7, s.startUnixNano)
      .fixed64(8, s.endUnixNano);
    keyValues(span, 9, s.attributes);
    span.message(15, new Message().string(2, s.status.message).uint(3, s.status.code));
    ss.message(2, span);
  }
  const rs = new Message().message(1, resourceMessage(resource)).message(2, ss);
  return new Message().message(1, rs).finish();
}

/**
 * collector/metrics/v1: ExportMetricsServiceRequest { resource_metrics = 1 }; metrics.proto: ResourceMetrics
 * { resource = 1; scope_metrics = 2 }, ScopeMetrics { scope = 1; metrics = 2 }, Metric { name = 1; description = 2;
 * unit = 3; gauge = 5; sum = 7; histogram = 9 }, Gauge { data_points = 1 }, Sum { data_points = 1;
 * aggregation_temporality = 2; is_monotonic = 3 }, Histogram { data_points = 1; aggregation_temporality = 2 },
 * NumberDataPoint { start_time_unix_nano = 2; time_unix_nano = 3; as_double = 4; as_int = 6 (sfixed64);
 * attributes = 7 }, HistogramDataPoint { start = 2; time = 3; count = 4 (fixed64); optional sum = 5;
 * bucket_counts = 6 (packed fixed64); explicit_bounds = 7 (packed double); attributes = 9; optional min = 11;
 * optional max = 12 }.
 */
export function metricsProto(resource: Attributes, scope: Scope, metrics: readonly MetricData[], startUnixNano: bigint, nowUnixNano: bigint): Buffer {
  const number = (p: NumberPoint): Message => {
    const m = new Message();
    keyValues(m, 7, p.attributes);
    m.fixed64(2, startUnixNano).fixed64(3, nowUnixNano);
    if (Number.isSafeInteger(p.value)) m.fixed64(6, BigInt(p.value), true);
    else m.double(4, p.value, true);
    return m;
  };
  const sm = new Message().message(1, scopeMessage(scope));
  for (const metric of metrics) {
    const m = new Message().string(1, metric.name).string(2, metric.description).string(3, metric.unit);
    if (metric.kind === 'histogram') {
      const h = new Message();
      for (const p of metric.points) {
        const dp = new Message();
        keyValues(dp, 9, p.attributes);
        dp.fixed64(2, startUnixNano).fixed64(3, nowUnixNano).fixed64(4, BigInt(p.count)).double(5, p.sum, true);
        dp.packed(6, p.bucketCounts, 'fixed64').packed(7, p.bounds, 'double');
        if (p.min !== undefined) dp.double(11, p.min, true);
        if (p.max !== undefined) dp.double(12, p.max, true);
        h.message(1, dp);
      }
      m.message(9, h.uint(2, CUMULATIVE));
    } else if (metric.kind === 'sum') {
      const s = new Message();
      for (const p of metric.points) s.message(1, number(p));
      m.message(7, s.uint(2, CUMULATIVE).bool(3, true));
    } else {
      const g = new Message();
      for (const p of metric.points) g.message(1, number(p));
      m.message(5, g);
    }
    sm.message(2, m);
  }
  const rm = new Message().message(1, resourceMessage(resource)).message(2, sm);
  return new Message().message(1, rm).finish();
}
