import type { EnvVar } from './types.js';
import type { InjectionConfig } from '../config.js';

// The injected proxy's OpenTelemetry and audit-log environment, from injection.proxy.telemetry: only what a value
// asks for (an empty value leaves the proxy's default), and the OTLP headers, which may hold a collector's API
// key, from a Secret of the pod's namespace rather than in the pod spec. The proxy reads these as the OTel SDK
// specification defines them (sidecar/telemetry/config.ts).

export function telemetryEnv(tel: InjectionConfig['proxy']['telemetry']): EnvVar[] {
  const env: EnvVar[] = [];
  const set = (name: string, value: string): void => {
    if (value !== '') env.push({ name, value });
  };
  set('OTEL_EXPORTER_OTLP_ENDPOINT', tel.otlpEndpoint);
  set('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', tel.otlpTracesEndpoint);
  set('OTEL_EXPORTER_OTLP_METRICS_ENDPOINT', tel.otlpMetricsEndpoint);
  set('OTEL_EXPORTER_OTLP_PROTOCOL', tel.otlpProtocol);
  set('OTEL_EXPORTER_OTLP_COMPRESSION', tel.otlpCompression);
  if (tel.otlpTimeoutMs > 0) set('OTEL_EXPORTER_OTLP_TIMEOUT', String(tel.otlpTimeoutMs));
  if (tel.otlpHeadersSecret.name !== '') {
    env.push({ name: 'OTEL_EXPORTER_OTLP_HEADERS', valueFrom: { secretKeyRef: { name: tel.otlpHeadersSecret.name, key: tel.otlpHeadersSecret.key } } });
  }
  if (tel.metricExportIntervalMs > 0) set('OTEL_METRIC_EXPORT_INTERVAL', String(tel.metricExportIntervalMs));
  set('OTEL_SERVICE_NAME', tel.serviceName);
  set('OTEL_RESOURCE_ATTRIBUTES', Object.entries(tel.resourceAttributes).map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join(','));
  set('AIGRESS_AUDIT_LOG', tel.auditLog);
  if (tel.captureContent) env.push({ name: 'OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT', value: 'true' });
  return env;
}
