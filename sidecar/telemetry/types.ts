import type { GenAiMetrics } from './genai-metrics.js';
import type { Attributes, SpanData } from './otlp-json.js';
import type { AuditRecord } from './audit-record.js';
import type { Refusal, RefusalContext } from './refusal.js';

// The process-lifetime telemetry services the pipeline's telemetry processor writes to (PipelineServices
// fields). Types only: the exporter's code is loaded when OTLP export is enabled, never otherwise.

export interface OtlpService {
  /** Spans are exported (a traces endpoint is configured): the proxy then propagates trace context. */
  readonly tracing: boolean;
  /** The GenAI histograms with their OpenTelemetry attributes, when metrics are exported. */
  readonly genAi?: GenAiMetrics;
  /** Queues one finished span for export (dropped, and counted, when the queue is full). */
  span(s: SpanData): void;
  /** Sends what is queued now (tests, and close). */
  flush(): Promise<void>;
  close(): Promise<void>;
}

export interface AuditSink {
  write(record: AuditRecord): void;
  close(): Promise<void>;
}

export interface TelemetryServices {
  readonly otlp?: OtlpService;
  readonly audit?: AuditSink;
  /** gen_ai.input.messages / gen_ai.output.messages on spans (with the redactions applied): off by default. */
  readonly captureContent: boolean;
  /** Resource attributes of this proxy (service, pod identity), also used for the audit record's pod fields. */
  readonly resource: Attributes;
  /** A request refused before the pipeline (REFUSAL_REASONS in refusal.ts: 400, 408, 413, 421, 431): its audit record and span. */
  refused?(r: Refusal, c: RefusalContext): void;
}
