import { UserError } from '../../shared/errors.js';

// Telemetry settings from the standard OpenTelemetry environment variables and the proxy's flags. Pure: every
// bad value is a UserError naming the variable or flag. Nothing is enabled unless asked: no endpoint, no export.

export type OtlpProtocol = 'http/protobuf' | 'http/json';

/** How one signal (traces or metrics) is exported: the OTEL_EXPORTER_OTLP_* settings, per-signal ones first. */
export interface OtlpSignal {
  /** Full URL (…/v1/traces, …/v1/metrics). */
  url: URL;
  protocol: OtlpProtocol;
  /** Sent with every export (an API key of a hosted collector); never logged. */
  headers: Readonly<Record<string, string>>;
  timeoutMs: number;
  compression: 'gzip' | 'none';
  /** PEM files: roots to trust for the collector, and a client certificate and key for mutual TLS. */
  certificateFile?: string;
  clientCertificateFile?: string;
  clientKeyFile?: string;
}

export interface OtlpConfig {
  /** A signal without settings is not exported. */
  traces?: OtlpSignal;
  metrics?: OtlpSignal;
  metricsIntervalMs: number;
  /** Span batches are sent at least this often. */
  spanDelayMs: number;
  maxQueue: number;
  maxBatch: number;
  serviceName: string;
  /** OTEL_RESOURCE_ATTRIBUTES, added to the pod identity the proxy reports. */
  resource: Readonly<Record<string, string>>;
}

/** `setting`: where a file path came from (`--audit-log` or `AIGRESS_AUDIT_LOG`), named when it cannot be opened. */
export type AuditDestination = { kind: 'stdout' } | { kind: 'stderr' } | { kind: 'file'; path: string; setting: string };

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

/** The per-signal variable when it is set, else the general one (the OTel spec's precedence). */
function pick(env: Env, signal: Signal, what: string): { name: string; value: string | undefined } {
  const specific = `OTEL_EXPORTER_OTLP_${signal}_${what}`;
  const v = env[specific];
  if (v !== undefined && v !== '') return { name: specific, value: v };
  const general = `OTEL_EXPORTER_OTLP_${what}`;
  return { name: general, value: env[general] === '' ? undefined : env[general] };
}

type Signal = 'TRACES' | 'METRICS';

function protocol(env: Env, signal: Signal): OtlpProtocol {
  const { name, value } = pick(env, signal, 'PROTOCOL');
  if (value === undefined || value === 'http/protobuf') return 'http/protobuf';
  if (value === 'http/json') return 'http/json';
  if (value === 'grpc') {
    throw new UserError(`${name}: 'grpc' is not supported by aigress; use http/protobuf (the default) or http/json against the collector's OTLP/HTTP port (4318), which every OpenTelemetry Collector's otlp receiver serves`, 2);
  }
  throw new UserError(`${name}: expected http/protobuf or http/json, got '${value}'`, 2);
}

function compression(env: Env, signal: Signal): 'gzip' | 'none' {
  const { name, value } = pick(env, signal, 'COMPRESSION');
  if (value === undefined || value === 'none') return 'none';
  if (value === 'gzip') return 'gzip';
  throw new UserError(`${name}: expected gzip or none, got '${value}'`, 2);
}

function signalConfig(env: Env, signal: Signal, u: URL): OtlpSignal {
  const timeout = pick(env, signal, 'TIMEOUT');
  const headers = pick(env, signal, 'HEADERS');
  const files: Partial<OtlpSignal> = {};
  for (const [what, key] of [['CERTIFICATE', 'certificateFile'], ['CLIENT_CERTIFICATE', 'clientCertificateFile'], ['CLIENT_KEY', 'clientKeyFile']] as const) {
    const f = pick(env, signal, what);
    if (f.value !== undefined) files[key] = f.value;
  }
  if ((files.clientCertificateFile === undefined) !== (files.clientKeyFile === undefined)) {
    const missing = files.clientKeyFile === undefined ? 'CLIENT_KEY' : 'CLIENT_CERTIFICATE';
    throw new UserError(`OTEL_EXPORTER_OTLP_${missing} (or OTEL_EXPORTER_OTLP_${signal}_${missing}): a client certificate needs its key and the key its certificate`, 2);
  }
  return {
    url: u,
    protocol: protocol(env, signal),
    headers: keyValues(headers.name, headers.value),
    timeoutMs: millis(timeout.name, timeout.value, 10_000),
    compression: compression(env, signal),
    ...files,
  };
}

const TRUE = new Set(['true', '1', 'yes']);
/** What the OTEL_*_EXPORTER variables may name; only otlp exports anything here. */
const EXPORTERS = new Set(['otlp', 'none']);
/** The OTel spec's default OTLP/HTTP endpoint, used when OTEL_*_EXPORTER=otlp is set without an endpoint. */
const DEFAULT_ENDPOINT = 'http://localhost:4318';

/** OTEL_TRACES_EXPORTER / OTEL_METRICS_EXPORTER: 'off' (none), 'asked' (otlp named), 'default' (unset). */
function exporterChoice(env: Env, name: 'OTEL_TRACES_EXPORTER' | 'OTEL_METRICS_EXPORTER'): 'off' | 'asked' | 'default' {
  const v = env[name];
  if (v === undefined || v.trim() === '') return 'default';
  const list = v.split(',').map((s) => s.trim()).filter((s) => s !== '');
  const bad = list.find((x) => !EXPORTERS.has(x));
  if (bad !== undefined) throw new UserError(`${name}: '${bad}' is not supported; aigress exports otlp (or none)`, 2);
  if (list.includes('none')) return 'off';
  return 'asked';
}

export function telemetryConfig(env: Env, flags: TelemetryFlags = {}): TelemetryConfig {
  const cfg: TelemetryConfig = {
    captureContent: flags.captureContent === true || TRUE.has((env.OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT ?? '').toLowerCase()),
  };
  const a = flags.auditLog ?? env.AIGRESS_AUDIT_LOG;
  if (a !== undefined && a !== '') {
    cfg.audit = a === 'stdout' ? { kind: 'stdout' } : a === 'stderr' ? { kind: 'stderr' } : { kind: 'file', path: a, setting: flags.auditLog !== undefined ? '--audit-log' : 'AIGRESS_AUDIT_LOG' };
  }
  if (TRUE.has((env.OTEL_SDK_DISABLED ?? '').toLowerCase())) return cfg;
  const base = flags.otlpEndpoint ?? (env.OTEL_EXPORTER_OTLP_ENDPOINT || undefined);
  const baseName = flags.otlpEndpoint !== undefined ? '--otlp-endpoint' : 'OTEL_EXPORTER_OTLP_ENDPOINT';
  const endpoint = (signal: Signal, path: 'traces' | 'metrics', choice: 'off' | 'asked' | 'default'): OtlpSignal | undefined => {
    if (choice === 'off') return undefined;
    const name = `OTEL_EXPORTER_OTLP_${signal}_ENDPOINT`;
    const own = env[name];
    // No endpoint at all: nothing is exported (OTLP off costs nothing), unless OTEL_*_EXPORTER=otlp asks for
    // the spec's default, a collector on localhost.
    let u: URL | undefined;
    if (own) u = url(name, own);
    else if (base) u = signalUrl(baseName, base, path);
    else if (choice === 'asked') u = signalUrl('OTEL_EXPORTER_OTLP_ENDPOINT', DEFAULT_ENDPOINT, path);
    return u && signalConfig(env, signal, u);
  };
  const traces = endpoint('TRACES', 'traces', exporterChoice(env, 'OTEL_TRACES_EXPORTER'));
  const metrics = endpoint('METRICS', 'metrics', exporterChoice(env, 'OTEL_METRICS_EXPORTER'));
  if (!traces && !metrics) return cfg;
  const resource = keyValues('OTEL_RESOURCE_ATTRIBUTES', env.OTEL_RESOURCE_ATTRIBUTES);
  cfg.otlp = {
    ...(traces && { traces }),
    ...(metrics && { metrics }),
    metricsIntervalMs: millis('OTEL_METRIC_EXPORT_INTERVAL', env.OTEL_METRIC_EXPORT_INTERVAL, 60_000, 100),
    spanDelayMs: millis('OTEL_BSP_SCHEDULE_DELAY', env.OTEL_BSP_SCHEDULE_DELAY, 5_000),
    maxQueue: int('OTEL_BSP_MAX_QUEUE_SIZE', env.OTEL_BSP_MAX_QUEUE_SIZE, 2_048),
    maxBatch: int('OTEL_BSP_MAX_EXPORT_BATCH_SIZE', env.OTEL_BSP_MAX_EXPORT_BATCH_SIZE, 512),
    serviceName: env.OTEL_SERVICE_NAME || resource['service.name'] || 'aigress-proxy',
    resource,
  };
  return cfg;
}
