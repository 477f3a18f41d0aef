// Injection config → the injected proxy's telemetry env: nothing unless asked, and bad values named.
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../../webhook/config.js';
import { proxyContainer } from '../../../webhook/inject/template.js';
import { telemetryConfig } from '../../../sidecar/telemetry/config.js';
import { parse } from 'yaml';
import { inject } from '../../../webhook/inject/inject.js';
import { find, lint, render } from '../chart/render.js';

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

  it('a file audit log gets a writable emptyDir at its directory, mounted in the proxy only', () => {
    const r = validateConfig({ injection: { proxy: { telemetry: { auditLog: '/var/log/aigress/audit.jsonl' } } } });
    if (!r.ok) throw new Error(JSON.stringify(r.issues));
    const out = inject({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec: { containers: [{ name: 'app', image: 'a' }] } }, { namespace: 'team-a' }, r.config.injection);
    const spec = out.pod!.spec!;
    expect(spec.volumes).toContainEqual({ name: 'aigress-audit', emptyDir: {} });
    const proxy = [...(spec.initContainers ?? []), ...spec.containers].find((c) => c.name === 'aigress-proxy')!;
    expect(proxy.securityContext).toMatchObject({ readOnlyRootFilesystem: true });
    expect(proxy.volumeMounts).toContainEqual({ name: 'aigress-audit', mountPath: '/var/log/aigress' });
    expect(spec.containers.find((c) => c.name === 'app')!.volumeMounts?.some((m) => m.name === 'aigress-audit')).toBe(false);
    // stdout, stderr and none need no volume
    for (const auditLog of ['stdout', 'stderr', '']) {
      const c = validateConfig({ injection: { proxy: { telemetry: { auditLog } } } });
      if (!c.ok) throw new Error(JSON.stringify(c.issues));
      const o = inject({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec: { containers: [{ name: 'app', image: 'a' }] } }, { namespace: 'team-a' }, c.config.injection);
      expect(o.pod!.spec!.volumes!.map((v) => v.name)).not.toContain('aigress-audit');
    }
  });

  it('refuses an audit log path a volume cannot be mounted for, naming the field', () => {
    for (const auditLog of ['audit.jsonl', '/audit.jsonl', '/var/log/aigress/', '/var/log/../x.jsonl', '/var//x.jsonl', '/var/run/aigress/ca/audit.jsonl', '/var/run/secrets/audit.jsonl', '/c:/x.jsonl']) {
      const r = validateConfig({ injection: { proxy: { telemetry: { auditLog } } } });
      expect(r.ok, auditLog).toBe(false);
      if (!r.ok) expect(r.issues.map((i) => i.path), auditLog).toEqual(['injection.proxy.telemetry.auditLog']);
    }
  });

  it('names the field it refuses', () => {
    const r = validateConfig({ injection: { proxy: { telemetry: { otlpEndpoint: 'collector:4318', captureContent: 'yes', extra: 1 } } } });
    expect(r.ok).toBe(false);
    const paths = r.ok ? [] : r.issues.map((i) => i.path);
    expect(paths).toEqual(expect.arrayContaining(['injection.proxy.telemetry.otlpEndpoint', 'injection.proxy.telemetry.captureContent', 'injection.proxy.telemetry.extra']));
  });
});

const ALL = {
  otlpEndpoint: 'https://otel-collector.observability:4318',
  otlpMetricsEndpoint: 'https://metrics.example/otlp/v1/metrics',
  otlpProtocol: 'http/json',
  otlpCompression: 'gzip',
  otlpTimeoutMs: 2500,
  otlpHeadersSecret: { name: 'otlp-auth', key: 'hdrs' },
  metricExportIntervalMs: 15000,
  serviceName: 'egress',
  resourceAttributes: { 'deployment.environment.name': 'prod', 'team.note': 'a,b=c' },
  auditLog: '/var/log/aigress/audit.jsonl',
};

describe('chart values injection.proxy.telemetry → env of the injected proxy (real helm)', () => {
  it('renders every OTEL_* value into the control plane config, whose injection sets them on aigress-proxy and the proxy reads them', () => {
    expect(lint({ injection: { proxy: { telemetry: ALL } } }).code).toBe(0);
    const objects = render({ injection: { proxy: { telemetry: ALL } } });
    const cm = find(objects, 'ConfigMap', 'aigress-config') as unknown as { data: Record<string, string> };
    const cfg = validateConfig(parse(Object.values(cm.data)[0]!));
    if (!cfg.ok) throw new Error(JSON.stringify(cfg.issues));
    const r = inject({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec: { containers: [{ name: 'app', image: 'a' }] } }, { namespace: 'team-a' }, cfg.config.injection);
    const containers = [...(r.pod?.spec?.initContainers ?? []), ...(r.pod?.spec?.containers ?? [])];
    const env = containers.find((c) => c.name === 'aigress-proxy')!.env ?? [];
    const value = (n: string): string | undefined => env.find((e) => e.name === n)?.value;
    expect(value('OTEL_EXPORTER_OTLP_ENDPOINT')).toBe(ALL.otlpEndpoint);
    expect(value('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT')).toBeUndefined();
    expect(value('OTEL_EXPORTER_OTLP_METRICS_ENDPOINT')).toBe(ALL.otlpMetricsEndpoint);
    expect(value('OTEL_EXPORTER_OTLP_PROTOCOL')).toBe('http/json');
    expect(value('OTEL_EXPORTER_OTLP_COMPRESSION')).toBe('gzip');
    expect(value('OTEL_EXPORTER_OTLP_TIMEOUT')).toBe('2500');
    expect(value('OTEL_METRIC_EXPORT_INTERVAL')).toBe('15000');
    expect(value('OTEL_SERVICE_NAME')).toBe('egress');
    // The headers (an API key) come from the Secret, never as a value in the pod spec.
    const headers = env.find((e) => e.name === 'OTEL_EXPORTER_OTLP_HEADERS')!;
    expect(headers.value).toBeUndefined();
    expect(headers.valueFrom).toEqual({ secretKeyRef: { name: 'otlp-auth', key: 'hdrs' } });
    // What the proxy makes of it, with the Secret's content as the kubelet would put it in.
    const proxyEnv: Record<string, string> = { OTEL_EXPORTER_OTLP_HEADERS: 'api-key=k%20ey' };
    for (const e of env) if (e.value !== undefined) proxyEnv[e.name] = e.value;
    const c = telemetryConfig(proxyEnv);
    expect(c.otlp!.traces).toMatchObject({ url: new URL('https://otel-collector.observability:4318/v1/traces'), protocol: 'http/json', compression: 'gzip', timeoutMs: 2500, headers: { 'api-key': 'k ey' } });
    expect(c.otlp!.metrics!.url.href).toBe(ALL.otlpMetricsEndpoint);
    expect(c.otlp).toMatchObject({ metricsIntervalMs: 15000, serviceName: 'egress', resource: { 'deployment.environment.name': 'prod', 'team.note': 'a,b=c' } });
    expect(c.audit).toEqual({ kind: 'file', path: ALL.auditLog, setting: 'AIGRESS_AUDIT_LOG' });
  });

  it('the chart schema refuses what the proxy would refuse at start', () => {
    for (const bad of [{ otlpProtocol: 'grpc' }, { otlpCompression: 'zstd' }, { metricExportIntervalMs: 50 }, { otlpTracesEndpoint: 'collector:4318' }, { resourceAttributes: { 'a b': 'x' } }, { auditLog: 'audit.jsonl' }, { auditLog: '/audit.jsonl' }, { auditLog: '/var/log/aigress/' }]) {
      const res = lint({ injection: { proxy: { telemetry: bad } } });
      expect(res.code, JSON.stringify(bad)).not.toBe(0);
      const v = validateConfig({ injection: { proxy: { telemetry: bad } } });
      expect(v.ok, JSON.stringify(bad)).toBe(false);
    }
  });
});
