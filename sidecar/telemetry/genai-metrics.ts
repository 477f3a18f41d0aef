import type { MetricObjectWithValues, MetricValue, MetricValueWithName, Registry } from 'prom-client';
import { SECONDS_BUCKETS, TOKEN_BUCKETS } from '../pipeline/metrics.js';
import type { Attributes, HistogramPoint, MetricData, NumberPoint } from './otlp-json.js';

// What the proxy exports over OTLP as metrics: the OpenTelemetry GenAI client histograms, recorded here with
// their full semantic-convention attributes (gen_ai.response.model, server.address, server.port, and
// time_per_output_chunk for streams, which the Prometheus histograms do not carry), and the proxy's own
// `aigress_*` counters and gauges, read from the Prometheus registry at each export so the two never disagree.

/** One histogram with OpenTelemetry's explicit bucket boundaries, one series per attribute set. */
export class OtelHistogram {
  private readonly series = new Map<string, { attributes: Attributes; counts: number[]; count: number; sum: number; min: number; max: number }>();

  constructor(
    readonly name: string,
    readonly description: string,
    readonly unit: string,
    readonly bounds: readonly number[],
    /** A bound on distinct attribute sets; past it new sets are dropped (the inputs are bounded labels already). */
    private readonly maxSeries = 5_000,
  ) {}

  record(attributes: Attributes, value: number, key = seriesKey(attributes)): void {
    if (!Number.isFinite(value) || value < 0) return;
    let s = this.series.get(key);
    if (!s) {
      if (this.series.size >= this.maxSeries) return;
      s = { attributes, counts: new Array<number>(this.bounds.length + 1).fill(0), count: 0, sum: 0, min: value, max: value };
      this.series.set(key, s);
    }
    let i = 0;
    while (i < this.bounds.length && value > this.bounds[i]!) i++;
    s.counts[i]!++;
    s.count++;
    s.sum += value;
    if (value < s.min) s.min = value;
    if (value > s.max) s.max = value;
  }

  data(): MetricData {
    const points: HistogramPoint[] = [...this.series.values()].map((s) => ({
      attributes: s.attributes,
      count: s.count,
      sum: s.sum,
      min: s.min,
      max: s.max,
      bucketCounts: [...s.counts],
      bounds: this.bounds,
    }));
    return { name: this.name, description: this.description, unit: this.unit, kind: 'histogram', points };
  }
}

export function seriesKey(a: Attributes): string {
  let k = '';
  for (const [n, v] of Object.entries(a)) if (v !== undefined) k += `${n}\u0000${String(v)}\u0001`;
  return k;
}

export interface GenAiMetrics {
  readonly tokenUsage: OtelHistogram;
  readonly duration: OtelHistogram;
  readonly timeToFirstChunk: OtelHistogram;
  readonly timePerOutputChunk: OtelHistogram;
}

export function genAiMetrics(): GenAiMetrics {
  return {
    tokenUsage: new OtelHistogram('gen_ai.client.token.usage', 'Number of input and output tokens used.', '{token}', TOKEN_BUCKETS),
    duration: new OtelHistogram('gen_ai.client.operation.duration', 'GenAI operation duration.', 's', SECONDS_BUCKETS),
    timeToFirstChunk: new OtelHistogram(
      'gen_ai.client.operation.time_to_first_chunk',
      'Time to receive the first chunk of a streamed response, from the request.',
      's',
      SECONDS_BUCKETS,
    ),
    timePerOutputChunk: new OtelHistogram(
      'gen_ai.client.operation.time_per_output_chunk',
      'Time from the end of the previous chunk to the end of this one, for each chunk of a stream after the first.',
      's',
      SECONDS_BUCKETS,
    ),
  };
}

/**
 * The proxy's own metrics from the Prometheus registry, as OTLP data: counters become monotonic cumulative
 * sums, gauges gauges, histograms histograms (Prometheus' cumulative `le` buckets turned into per-bucket
 * counts). Only `aigress_*`: the GenAI histograms are exported from `GenAiMetrics` with their OTel names and
 * attributes, and the runtime's process metrics stay on /metrics.
 */
export async function registryMetrics(registry: Registry): Promise<MetricData[]> {
  const out: MetricData[] = [];
  for (const m of (await registry.getMetricsAsJSON()) as MetricObjectWithValues<MetricValue<string>>[]) {
    if (!m.name.startsWith('aigress_')) continue;
    const type = String(m.type);
    if (type === 'counter' || type === 'gauge') {
      const points: NumberPoint[] = m.values.map((v) => ({ attributes: labels(v.labels), value: v.value }));
      out.push({ name: m.name, description: m.help, unit: m.name.endsWith('_usd_total') ? 'USD' : '1', kind: type === 'counter' ? 'sum' : 'gauge', points });
    } else if (type === 'histogram') {
      out.push({ name: m.name, description: m.help, unit: '1', kind: 'histogram', points: histogramPoints(m.values as MetricValueWithName<string>[]) });
    }
  }
  return out;
}

function labels(l: Partial<Record<string, string | number>>): Attributes {
  const a: Record<string, string> = {};
  for (const [k, v] of Object.entries(l)) if (v !== undefined) a[k] = String(v);
  return a;
}

function histogramPoints(values: readonly MetricValueWithName<string>[]): HistogramPoint[] {
  const bySeries = new Map<string, { attributes: Attributes; le: [number, number][]; sum: number; count: number }>();
  for (const v of values) {
    const { le, ...rest } = v.labels as Record<string, string | number>;
    const attributes = labels(rest);
    const key = seriesKey(attributes);
    let s = bySeries.get(key);
    if (!s) bySeries.set(key, (s = { attributes, le: [], sum: 0, count: 0 }));
    if (v.metricName?.endsWith('_bucket')) s.le.push([le === '+Inf' ? Infinity : Number(le), v.value]);
    else if (v.metricName?.endsWith('_sum')) s.sum = v.value;
    else if (v.metricName?.endsWith('_count')) s.count = v.value;
  }
  return [...bySeries.values()].map((s) => {
    const sorted = s.le.sort((a, b) => a[0] - b[0]);
    const bounds = sorted.filter(([b]) => b !== Infinity).map(([b]) => b);
    const counts: number[] = [];
    let prev = 0;
    for (const [, c] of sorted) {
      counts.push(c - prev);
      prev = c;
    }
    if (counts.length === bounds.length) counts.push(s.count - prev);
    return { attributes: s.attributes, count: s.count, sum: s.sum, bucketCounts: counts, bounds };
  });
}
