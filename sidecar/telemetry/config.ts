import { UserError } from '../../shared/errors.js';

// Telemetry settings from the standard OpenTelemetry environment variables and the proxy's flags. Pure: every
// bad value is a UserError naming the variable or flag. Nothing is enabled unless asked: no endpoint, no export.

export interface OtlpConfig {
  /** Full URLs (…/v1/traces, …/v1/metrics); a signal without one is not exported. */
  tracesUrl?: URL;
  metricsUrl?: URL;
  /** Sent with every export (an API key of a hosted collector); never logged. */
  headers: Readonly<Record<string, string>>;
  timeoutMs: number;
  metricsIntervalMs: number;
  /** Span batches are sent at least this often. */
  spanDelayMs: number;
  maxQueue: number;
  maxBatch: number;
  serviceName: string;
  /** OTEL_RESOURCE_ATTRIBUTES, added to the pod identity the proxy reports. */
  resource: Readonly<Record<string, string>>;
}

export type AuditDestination = { kind: 'stdout' } | { kind: 'stderr' } | { kind: 'file'; path: string };

export interface TelemetryConfig {
  otlp?: OtlpConfig;
  /** Prompt and completion text on spans (gen_ai.input.messages / gen_ai.output.messages): off unless asked. */
  captureContent: boolean;
  audit?: AuditDestination;
}

export interface TelemetryFlags {
  /** --otlp-endpoint: same as OTEL_EXPORTER_OTLP_ENDPOINT (the flag wins). */
  otlpEndpoint?: string;
  /** --audit-log: stdout, stderr or a file path (as AIGRESS_AUDIT_LOG; the flag wins). */
  auditLog?: string;
  /** --capture-content */
  captureContent?: boolean;
}

type Env = Readonly<Record<string, string | undefined>>;

function url(name: string, value: string): URL {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw new UserError(`${name}: not a URL: '${value}'`, 2);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new UserError(`${name}: expected an http:// or https:// URL, got '${value}'`, 2);
  return u;
}

/** OTEL_EXPORTER_OTLP_ENDPOINT is a base: the signal's path is appended (spec: "…/v1/traces"). */
function signalUrl(name: string, base: string, signal: 'traces' | 'metrics'): URL {
  const u = url(name, base);
  u.pathname = `${u.pathname.replace(/\/$/, '')}/v1/${signal}`;
  return u;
}

function millis(name: string, value: string | undefined, fallback: number, min = 1): number {
  if (value === undefined || value === '') return fallback;
  if (!/^\d+$/.test(value) || Number(value) < min) throw new UserError(`${name}: expected a whole number of milliseconds ≥ ${min}, got '${value}'`, 2);
  return Number(value);
}

function int(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined || value === '') return fallback;
  if (!/^\d+$/.test(value) || Number(value) < 1) throw new UserError(`${name}: expected a positive whole number, got '${value}'`, 2);
  return Number(value);
}

/** `k=v,k2=v2` with URL-encoded values (OTEL_EXPORTER_OTLP_HEADERS, OTEL_RESOURCE_ATTRIBUTES). */
function keyValues(name: string, value: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (value === undefined || value.trim() === '') return out;
  for (const part of value.split(',')) {
    if (part.trim() === '') continue;
    const eq = part.indexOf('=');
    const k = eq > 0 ? part.slice(0, eq).trim() : '';
    if (k === '') throw new UserError(`${name}: expected key=value pairs separated by commas, got '${part.trim().slice(0, 40)}'`, 2);
    let v: string;
    try {
      v = decodeURIComponent(part.slice(eq + 1).trim());
    } catch {
      throw new UserError(`${name}: the value of '${k}' is not valid percent-encoding`, 2);
    }
    out[k] = v;
  }
  return out;
}

function protocol(env: Env, signal: 'TRACES' | 'METRICS'): void {
  const name = env[`OTEL_EXPORTER_OTLP_${signal}_PROTOCOL`] !== undefined ? `OTEL_EXPORTER_OTLP_${signal}_PROTOCOL` : 'OTEL_EXPORTER_OTLP_PROTOCOL';
  const p = env[name];
  if (p === undefined || p === '' || p === 'http/json') return;
  throw new UserError(`${name}: '${p}' is not supported by this version; aigress exports OTLP over HTTP with JSON bodies: set http/json (every OpenTelemetry Collector's otlp receiver accepts it)`, 2);
}

const TRUE = new Set(['true', '1', 'yes']);

export function telemetryConfig(env: Env, flags: TelemetryFlags = {}): TelemetryConfig {
  const cfg: TelemetryConfig = {
    captureContent: flags.captureContent === true || TRUE.has((env.OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT ?? '').toLowerCase()),
  };
  const a = flags.auditLog ?? env.AIGRESS_AUDIT_LOG;
  if (a !== undefined && a !== '') {
    cfg.audit = a === 'stdout' ? { kind: 'stdout' } : a === 'stderr' ? { kind: 'stderr' } : { kind: 'file', path: a };
  }
  if (TRUE.has((env.OTEL_SDK_DISABLED ?? '').toLowerCase())) return cfg;
  const base = flags.otlpEndpoint ?? env.OTEL_EXPORTER_OTLP_ENDPOINT;
  const baseName = flags.otlpEndpoint !== undefined ? '--otlp-endpoint' : 'OTEL_EXPORTER_OTLP_ENDPOINT';
  const none = (v: string | undefined): boolean => (v ?? '').split(',').map((s) => s.trim()).includes('none');
  let tracesUrl: URL | undefined;
  let metricsUrl: URL | undefined;
  if (!none(env.OTEL_TRACES_EXPORTER)) {
    if (env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) tracesUrl = url('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
    else if (base) tracesUrl = signalUrl(baseName, base, 'traces');
  }
  if (!none(env.OTEL_METRICS_EXPORTER)) {
    if (env.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT) metricsUrl = url('OTEL_EXPORTER_OTLP_METRICS_ENDPOINT', env.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT);
    else if (base) metricsUrl = signalUrl(baseName, base, 'metrics');
  }
  if (!tracesUrl && !metricsUrl) return cfg;
  if (tracesUrl) protocol(env, 'TRACES');
  if (metricsUrl) protocol(env, 'METRICS');
  const timeoutMs = millis('OTEL_EXPORTER_OTLP_TIMEOUT', env.OTEL_EXPORTER_OTLP_TIMEOUT, 10_000);
  const resource = keyValues('OTEL_RESOURCE_ATTRIBUTES', env.OTEL_RESOURCE_ATTRIBUTES);
  cfg.otlp = {
    ...(tracesUrl && { tracesUrl }),
    ...(metricsUrl && { metricsUrl }),
    headers: keyValues('OTEL_EXPORTER_OTLP_HEADERS', env.OTEL_EXPORTER_OTLP_HEADERS),
    timeoutMs,
    metricsIntervalMs: millis('OTEL_METRIC_EXPORT_INTERVAL', env.OTEL_METRIC_EXPORT_INTERVAL, 60_000, 100),
    spanDelayMs: millis('OTEL_BSP_SCHEDULE_DELAY', env.OTEL_BSP_SCHEDULE_DELAY, 5_000),
    maxQueue: int('OTEL_BSP_MAX_QUEUE_SIZE', env.OTEL_BSP_MAX_QUEUE_SIZE, 2_048),
    maxBatch: int('OTEL_BSP_MAX_EXPORT_BATCH_SIZE', env.OTEL_BSP_MAX_EXPORT_BATCH_SIZE, 512),
    serviceName: env.OTEL_SERVICE_NAME || resource['service.name'] || 'aigress-proxy',
    resource,
  };
  return cfg;
}
