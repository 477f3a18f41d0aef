import { describe, expect, it } from 'vitest';
import { UserError } from '../../../shared/errors.js';
import { telemetryConfig } from '../../../sidecar/telemetry/config.js';
import { cleanTracestate, parseTraceparent, signatureCovers } from '../../../sidecar/telemetry/trace-context.js';
import { HeaderList } from '../../../sidecar/pipeline/header-list.js';
import { FinishReasons } from '../../../sidecar/telemetry/finish-reasons.js';

describe('telemetry configuration from OTEL_* variables and flags', () => {
  it('is off without an endpoint, and for OTEL_SDK_DISABLED', () => {
    expect(telemetryConfig({})).toEqual({ captureContent: false });
    expect(telemetryConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_SDK_DISABLED: 'true' }).otlp).toBeUndefined();
  });

  it('appends the signal paths to the base endpoint; per-signal endpoints are used as they are', () => {
    const c = telemetryConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector.obs:4318/', OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: 'https://m.example/otlp/metrics' });
    expect(c.otlp!.traces!.url.href).toBe('http://collector.obs:4318/v1/traces');
    expect(c.otlp!.metrics!.url.href).toBe('https://m.example/otlp/metrics');
    expect(telemetryConfig({}, { otlpEndpoint: 'http://flag:4318/base' }).otlp!.traces!.url.href).toBe('http://flag:4318/base/v1/traces');
  });

  it('reads headers, resource attributes, timeout, intervals, service name; OTEL_*_EXPORTER=none turns a signal off', () => {
    const c = telemetryConfig({
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318',
      OTEL_EXPORTER_OTLP_HEADERS: 'api-key=a%2Cb, x-tenant=t1',
      OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=prod',
      OTEL_EXPORTER_OTLP_TIMEOUT: '2500',
      OTEL_METRIC_EXPORT_INTERVAL: '15000',
      OTEL_SERVICE_NAME: 'egress',
      OTEL_METRICS_EXPORTER: 'none',
    });
    expect(c.otlp).toMatchObject({ resource: { 'deployment.environment.name': 'prod' }, metricsIntervalMs: 15000, serviceName: 'egress' });
    expect(c.otlp!.traces).toMatchObject({ headers: { 'api-key': 'a,b', 'x-tenant': 't1' }, timeoutMs: 2500, protocol: 'http/protobuf', compression: 'none' });
    expect(c.otlp!.metrics).toBeUndefined();
    expect(c.otlp!.traces).toBeDefined();
  });

  it('defaults to http/protobuf; per-signal protocol, headers, timeout, compression and TLS files win over the general ones', () => {
    const c = telemetryConfig({
      OTEL_EXPORTER_OTLP_ENDPOINT: 'https://c:4318',
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: 'http/protobuf',
      OTEL_EXPORTER_OTLP_HEADERS: 'a=1',
      OTEL_EXPORTER_OTLP_TRACES_HEADERS: 'b=2',
      OTEL_EXPORTER_OTLP_TIMEOUT: '3000',
      OTEL_EXPORTER_OTLP_METRICS_TIMEOUT: '700',
      OTEL_EXPORTER_OTLP_COMPRESSION: 'gzip',
      OTEL_EXPORTER_OTLP_TRACES_COMPRESSION: 'none',
      OTEL_EXPORTER_OTLP_CERTIFICATE: '/etc/otel/ca.pem',
      OTEL_EXPORTER_OTLP_METRICS_CLIENT_CERTIFICATE: '/etc/otel/tls.crt',
      OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY: '/etc/otel/tls.key',
    }).otlp!;
    expect(c.traces).toEqual({ url: new URL('https://c:4318/v1/traces'), protocol: 'http/json', headers: { b: '2' }, timeoutMs: 3000, compression: 'none', certificateFile: '/etc/otel/ca.pem' });
    expect(c.metrics).toEqual({
      url: new URL('https://c:4318/v1/metrics'),
      protocol: 'http/protobuf',
      headers: { a: '1' },
      timeoutMs: 700,
      compression: 'gzip',
      certificateFile: '/etc/otel/ca.pem',
      clientCertificateFile: '/etc/otel/tls.crt',
      clientKeyFile: '/etc/otel/tls.key',
    });
    expect(telemetryConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' }).otlp!.metrics!.protocol).toBe('http/protobuf');
  });

  it('exports to the spec default endpoint only when OTEL_*_EXPORTER=otlp asks without an endpoint', () => {
    expect(telemetryConfig({ OTEL_TRACES_EXPORTER: 'otlp' }).otlp!.traces!.url.href).toBe('http://localhost:4318/v1/traces');
    expect(telemetryConfig({ OTEL_TRACES_EXPORTER: 'otlp' }).otlp!.metrics).toBeUndefined();
    expect(telemetryConfig({ OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' }).otlp).toBeUndefined();
  });

  it('refuses bad values naming the variable, grpc, and unknown protocols', () => {
    const bad: [Record<string, string>, RegExp][] = [
      [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' }, /^OTEL_EXPORTER_OTLP_ENDPOINT: (not a URL|expected an http)/],
      [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c', OTEL_EXPORTER_OTLP_TIMEOUT: '10s' }, /^OTEL_EXPORTER_OTLP_TIMEOUT: expected a whole number/],
      [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c', OTEL_EXPORTER_OTLP_HEADERS: 'novalue' }, /^OTEL_EXPORTER_OTLP_HEADERS: expected key=value/],
      [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }, /^OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' is not supported.*http\/protobuf/],
      [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c', OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/thrift' }, /^OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: expected http\/protobuf or http\/json/],
      [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c', OTEL_EXPORTER_OTLP_METRICS_COMPRESSION: 'zstd' }, /^OTEL_EXPORTER_OTLP_METRICS_COMPRESSION: expected gzip or none/],
      [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c', OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: '-1' }, /^OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: expected a whole number/],
      [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c', OTEL_EXPORTER_OTLP_CLIENT_KEY: '/k' }, /^OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE .*needs its key/],
      [{ OTEL_TRACES_EXPORTER: 'zipkin' }, /^OTEL_TRACES_EXPORTER: 'zipkin' is not supported/],
    ];
    for (const [env, msg] of bad) {
      let err: unknown;
      try {
        telemetryConfig(env);
      } catch (e) {
        err = e;
      }
      expect(err, JSON.stringify(env)).toBeInstanceOf(UserError);
      expect((err as UserError).message).toMatch(msg);
    }
  });

  it('enables content capture only when asked, and reads the audit destination', () => {
    expect(telemetryConfig({ OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT: 'true' }).captureContent).toBe(true);
    expect(telemetryConfig({}, { captureContent: true }).captureContent).toBe(true);
    expect(telemetryConfig({}, { auditLog: 'stdout' }).audit).toEqual({ kind: 'stdout' });
    expect(telemetryConfig({}, { auditLog: '/var/log/aigress/audit.jsonl' }).audit).toEqual({ kind: 'file', path: '/var/log/aigress/audit.jsonl', setting: '--audit-log' });
  });
});

describe('W3C trace context', () => {
  it('reads valid traceparents and refuses invalid ones', () => {
    expect(parseTraceparent('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01')).toEqual({ traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', flags: '01' });
    // A later version is read by its first four fields.
    expect(parseTraceparent('01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra')?.spanId).toBe('00f067aa0ba902b7');
    for (const bad of ['', 'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', '00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01', '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01', '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x']) {
      expect(parseTraceparent(bad), bad).toBeUndefined();
    }
  });

  it('forwards a valid tracestate and drops a malformed or oversized one', () => {
    expect(cleanTracestate('rojo=00f067aa0ba902b7, congo=t61rcWkgMzE')).toBe('rojo=00f067aa0ba902b7,congo=t61rcWkgMzE');
    expect(cleanTracestate('no-equals-sign')).toBeUndefined();
    expect(cleanTracestate(`k=${'v'.repeat(600)}`)).toBeUndefined();
  });

  it("knows when an app's SigV4 signature covers a header", () => {
    const signed = new HeaderList(['Authorization', 'AWS4-HMAC-SHA256 Credential=A/20250101/us-east-1/bedrock/aws4_request, SignedHeaders=host;traceparent;x-amz-date, Signature=s']);
    expect(signatureCovers(signed, 'traceparent')).toBe(true);
    expect(signatureCovers(signed, 'tracestate')).toBe(false);
    expect(signatureCovers(new HeaderList(['authorization', 'Bearer sk-x']), 'traceparent')).toBe(false);
    expect(signatureCovers(new HeaderList([]), 'traceparent', '/model/m/invoke?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-SignedHeaders=host%3Btraceparent&X-Amz-Signature=s')).toBe(true);
    expect(signatureCovers(new HeaderList([]), 'traceparent', '/model/m/invoke?X-Amz-SignedHeaders=host')).toBe(false);
  });
});

describe('finish reasons', () => {
  it('reads every wire format, deduplicated and bounded', () => {
    const f = new FinishReasons();
    f.read({ choices: [{ finish_reason: 'stop' }, { finish_reason: 'length' }, { finish_reason: 'stop' }] });
    f.read({ type: 'message_delta', delta: { stop_reason: 'end_turn' } });
    f.read([{ candidates: [{ finishReason: 'STOP' }] }]);
    f.read({ stopReason: 'max_tokens' });
    f.read({ type: 'response.completed', response: { status: 'completed' } });
    f.read({ bytes: Buffer.from(JSON.stringify({ type: 'message_delta', delta: { stop_reason: 'tool_use' } })).toString('base64') });
    f.read({ choices: [{ finish_reason: 'x'.repeat(65) }] });
    expect(f.reasons).toEqual(['stop', 'length', 'end_turn', 'STOP', 'max_tokens', 'completed', 'tool_use']);
  });
});
