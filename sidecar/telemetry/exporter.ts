import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { gzipSync } from 'node:zlib';
import type { Registry } from 'prom-client';
import { VERSION } from '../../shared/constants.js';
import { errorMessage, UserError } from '../../shared/errors.js';
import type { Logger } from '../../shared/log.js';
import type { OtlpConfig, OtlpSignal } from './config.js';
import { genAiMetrics, registryMetrics, type GenAiMetrics } from './genai-metrics.js';
import { metricsBody, tracesBody, type Attributes, type MetricData, type Scope, type SpanData } from './otlp-json.js';
import { metricsProto, tracesProto } from './otlp-proto.js';
import type { OtlpService } from './types.js';

// The OTLP/HTTP exporter: spans batched (sent when a batch is full or every OTEL_BSP_SCHEDULE_DELAY), metrics
// every OTEL_METRIC_EXPORT_INTERVAL, each signal POSTed as protobuf (application/x-protobuf) or JSON, gzipped
// when asked, with its headers, timeout and TLS files. An export that
// fails is logged (once a minute at most) and dropped: telemetry never holds up or breaks an AI call. Loaded
// only when an OTLP endpoint is configured.

const SCOPE: Scope = { name: 'aigress', version: VERSION };
const WARN_EVERY_MS = 60_000;

/** The TLS files of a signal, read once at start: a missing file is a start-up error naming its variable. */
interface Tls {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

function readTls(s: OtlpSignal, signal: 'TRACES' | 'METRICS'): Tls {
  const read = (file: string | undefined, what: string): Buffer | undefined => {
    if (file === undefined) return undefined;
    try {
      return readFileSync(file);
    } catch (err) {
      throw new UserError(`OTEL_EXPORTER_OTLP_${what} (or OTEL_EXPORTER_OTLP_${signal}_${what}) ${file}: cannot read it: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`, 2);
    }
  };
  const ca = read(s.certificateFile, 'CERTIFICATE');
  const cert = read(s.clientCertificateFile, 'CLIENT_CERTIFICATE');
  const key = read(s.clientKeyFile, 'CLIENT_KEY');
  return { ...(ca && { ca }), ...(cert && { cert }), ...(key && { key }) };
}

export interface ExporterOptions {
  config: OtlpConfig;
  resource: Attributes;
  registry: Registry;
  log: Logger;
}

export class OtlpExporter implements OtlpService {
  readonly tracing: boolean;
  readonly genAi?: GenAiMetrics;
  private queue: SpanData[] = [];
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly inflight = new Set<Promise<void>>();
  private readonly startUnixNano = BigInt(Date.now()) * 1_000_000n;
  private lastWarn = 0;
  private readonly tls: { traces?: Tls; metrics?: Tls } = {};
  private closed = false;
  /** Spans dropped because the queue was full (a collector that cannot keep up). */
  dropped = 0;

  constructor(private readonly o: ExporterOptions) {
    const c = o.config;
    this.tracing = c.traces !== undefined;
    if (c.traces) this.tls.traces = readTls(c.traces, 'TRACES');
    if (c.metrics) this.tls.metrics = readTls(c.metrics, 'METRICS');
    if (c.metrics) this.genAi = genAiMetrics();
    if (c.traces) this.timers.push(setInterval(() => this.sendSpans(), c.spanDelayMs).unref());
    if (c.metrics) this.timers.push(setInterval(() => this.track(this.sendMetrics()), c.metricsIntervalMs).unref());
  }

  span(s: SpanData): void {
    if (!this.tracing || this.closed) return;
    if (this.queue.length >= this.o.config.maxQueue) {
      this.dropped++;
      return;
    }
    this.queue.push(s);
    if (this.queue.length >= this.o.config.maxBatch) this.sendSpans();
  }

  async flush(): Promise<void> {
    while (this.queue.length > 0) this.sendSpans();
    if (this.o.config.metrics) this.track(this.sendMetrics());
    await Promise.allSettled([...this.inflight]);
  }

  async close(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    await this.flush();
    this.closed = true;
  }

  private sendSpans(): void {
    const s = this.o.config.traces;
    if (this.queue.length === 0 || !s) return;
    const batch = this.queue.splice(0, this.o.config.maxBatch);
    const body = s.protocol === 'http/json' ? tracesBody(this.o.resource, SCOPE, batch) : tracesProto(this.o.resource, SCOPE, batch);
    this.track(this.post(s, this.tls.traces ?? {}, body));
  }

  private async sendMetrics(): Promise<void> {
    const s = this.o.config.metrics;
    if (!s) return;
    const data: MetricData[] = [...(await registryMetrics(this.o.registry))];
    if (this.genAi) for (const h of Object.values(this.genAi)) data.push(h.data());
    const now = BigInt(Date.now()) * 1_000_000n;
    const body = s.protocol === 'http/json' ? metricsBody(this.o.resource, SCOPE, data, this.startUnixNano, now) : metricsProto(this.o.resource, SCOPE, data, this.startUnixNano, now);
    await this.post(s, this.tls.metrics ?? {}, body);
  }

  private track(p: Promise<void>): void {
    this.inflight.add(p);
    void p.finally(() => this.inflight.delete(p));
  }

  /** One POST; resolves either way (failures are logged, rate limited). */
  private post(s: OtlpSignal, tls: Tls, body: string | Buffer): Promise<void> {
    const url = s.url;
    return new Promise<void>((resolve) => {
      const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
      const raw = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
      // A batch is at most a few hundred KiB: compressing it synchronously costs less than a worker round trip.
      const bytes = s.compression === 'gzip' ? gzipSync(raw) : raw;
      const req = send(
        url,
        {
          method: 'POST',
          headers: {
            ...s.headers,
            'content-type': s.protocol === 'http/json' ? 'application/json' : 'application/x-protobuf',
            ...(s.compression === 'gzip' && { 'content-encoding': 'gzip' }),
            'content-length': String(bytes.length),
          },
          timeout: s.timeoutMs,
          ...tls,
        },
        (res) => {
          res.resume();
          res.once('end', () => {
            const s = res.statusCode ?? 0;
            if (s < 200 || s >= 300) this.warn(url, `HTTP ${s}`);
            resolve();
          });
          res.once('error', () => resolve());
        },
      );
      req.once('timeout', () => req.destroy(new Error(`no answer within ${s.timeoutMs} ms`)));
      req.once('error', (err) => {
        this.warn(url, errorMessage(err));
        resolve();
      });
      req.end(bytes);
    });
  }

  private warn(url: URL, why: string): void {
    const now = Date.now();
    if (now - this.lastWarn < WARN_EVERY_MS) return;
    this.lastWarn = now;
    // The URL without credentials or query: headers may hold keys, the URL should not but might.
    this.o.log.warn({ endpoint: `${url.protocol}//${url.host}${url.pathname}`, err: why, droppedSpans: this.dropped }, 'OTLP export failed; telemetry dropped');
  }
}
