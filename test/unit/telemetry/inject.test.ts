// Injection config → the injected proxy's telemetry env: nothing unless asked, and bad values named.
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../../webhook/config.js';
import { proxyContainer } from '../../../webhook/inject/template.js';
import { telemetryConfig } from '../../../sidecar/telemetry/config.js';

const envOf = (telemetry: unknown) => {
  const r = validateConfig({ injection: { proxy: { telemetry } } });
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  const env = proxyContainer(r.config.injection, { includePorts: [], excludePorts: [], excludeCidrs: [] }, true).env ?? [];
  return Object.fromEntries(env.filter((e) => 'value' in e && e.value !== undefined).map((e) => [e.name, e.value as string]));
};

describe('injection.proxy.telemetry', () => {
  it('adds no env by default', () => {
    const env = envOf(undefined);
    expect(Object.keys(env).filter((k) => k.startsWith('OTEL_') || k === 'AIGRESS_AUDIT_LOG')).toEqual([]);
  });

  it('sets the standard OTEL_* variables and AIGRESS_AUDIT_LOG, which the proxy then reads', () => {
    const env = envOf({ otlpEndpoint: 'http://otel-collector.observability:4318', auditLog: 'stdout', captureContent: true });
    expect(env).toMatchObject({
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://otel-collector.observability:4318',
      AIGRESS_AUDIT_LOG: 'stdout',
      OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT: 'true',
    });
    const c = telemetryConfig(env);
    expect(c.otlp!.traces!.url.href).toBe('http://otel-collector.observability:4318/v1/traces');
    expect(c.audit).toEqual({ kind: 'stdout' });
    expect(c.captureContent).toBe(true);
  });

  it('names the field it refuses', () => {
    const r = validateConfig({ injection: { proxy: { telemetry: { otlpEndpoint: 'collector:4318', captureContent: 'yes', extra: 1 } } } });
    expect(r.ok).toBe(false);
    const paths = r.ok ? [] : r.issues.map((i) => i.path);
    expect(paths).toEqual(expect.arrayContaining(['injection.proxy.telemetry.otlpEndpoint', 'injection.proxy.telemetry.captureContent', 'injection.proxy.telemetry.extra']));
  });
});
