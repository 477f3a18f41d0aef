import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Registry } from 'prom-client';
import { VERSION } from '../../shared/constants.js';
import { errorMessage } from '../../shared/errors.js';
import type { Logger } from '../../shared/log.js';
import type { OtlpConfig } from './config.js';
import { genAiMetrics, registryMetrics, type GenAiMetrics } from './genai-metrics.js';
import { metricsBody, tracesBody, type Attributes, type Scope, type SpanData } from './otlp-json.js';
import type { OtlpService } from './types.js';

// The OTLP/HTTP exporter: spans batched (sent when a batch is full or every OTEL_BSP_SCHEDULE_DELAY), metrics
// every OTEL_METRIC_EXPORT_INTERVAL, both as JSON POSTs with the configured headers and timeout. An export that
// fails is logged (once a minute at most) and dropped: telemetry never holds up or breaks an AI call. Loaded
// only when an OTLP endpoint is configured.

const SCOPE: Scope = { name: 'aigress', version: VERSION };
const WARN_EVERY_MS = 60_000;

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
  private closed = false;
  /** Spans dropped because the queue was full (a collector that cannot keep up). */
  dropped = 0;

  constructor(private readonly o: ExporterOptions) {
    const c = o.config;
    this.tracing = c.tracesUrl !== undefined;
    if (c.metricsUrl) this.genAi = genAiMetrics();
    if (c.tracesUrl) this.timers.push(setInterval(() => this.sendSpans(), c.spanDelayMs).unref());
    if (c.metricsUrl) this.timers.push(setInterval(() => this.track(this.sendMetrics()), c.metricsIntervalMs).unref());
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
    if (this.o.config.metricsUrl) this.track(this.sendMetrics());
    await Promise.allSettled([...this.inflight]);
  }

  async close(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    await this.flush();
    this.closed = true;
  }

  private sendSpans(): void {
    if (this.queue.length === 0 || !this.o.config.tracesUrl) return;
    const batch = this.queue.splice(0, this.o.config.maxBatch);
    this.track(this.post(this.o.config.tracesUrl, tracesBody(this.o.resource, SCOPE, batch)));
  }

  private async sendMetrics(): Promise<void> {
    const url = this.o.config.metricsUrl;
    if (!url) return;
    const data = [...(await registryMetrics(this.o.registry))];
    if (this.genAi) for (const h of Object.values(this.genAi)) data.push(h.data());
    const now = BigInt(Date.now()) * 1_000_000n;
    await this.post(url, metricsBody(this.o.resource, SCOPE, data, this.startUnixNano, now));
  }

  private track(p: Promise<void>): void {
    this.inflight.add(p);
    void p.finally(() => this.inflight.delete(p));
  }

  /** One POST; resolves either way (failures are logged, rate limited). */
  private post(url: URL, body: string): Promise<void> {
    const c = this.o.config;
    return new Promise<void>((resolve) => {
      const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
      const bytes = Buffer.from(body, 'utf8');
      const req = send(
        url,
        {
          method: 'POST',
          headers: { ...c.headers, 'content-type': 'application/json', 'content-length': String(bytes.length) },
          timeout: c.timeoutMs,
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
      req.once('timeout', () => req.destroy(new Error(`no answer within ${c.timeoutMs} ms`)));
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
