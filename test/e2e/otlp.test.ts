import { afterAll, beforeAll, expect, it } from 'vitest';
import type { AuditRecord } from '../../sidecar/telemetry/audit-record.js';
import { attrs, otlpBody, type Value } from '../unit/telemetry/collector.js';
import { ANTHROPIC_HOST, OPENAI_HOST, PLAIN_HOST, type RequestRecord } from './support/fake-provider.js';
import { netnsExec } from './support/netns.js';
import { findContainer } from './support/pod-spec.js';
import { APP, PodSession, PROXY, promptLog } from './support/pod-session.js';
import { CURL } from './support/paths.js';
import { Background } from './support/process.js';
import { describeRoot } from './support/require-root.js';

// OTLP export from a pod played for real: the chart's injection values (endpoint, gzip, metric interval, resource
// attributes) become the injected proxy's OTEL_* env through `aigress inject`; the proxy, as UID 1500 in the pod's
// network namespace, exports to a collector in the outside namespace, reached by name like a cluster Service.
// The collector process only records what it gets; this test decodes the protobuf bodies (with the decoder driven
// by the opentelemetry-proto files) and checks one span per call, with the pod's identity, against the audit
// records and what the fake provider saw, and the metrics.

const KEYS = { openai: 'sk-e2e-otlp-openai-0000', anthropic: 'sk-ant-e2e-otlp-0000' };
const COLLECTOR_HOST = 'otel-collector.observability';
const APP_TRACE = '6bf92f3577b34da6a3ce929d0e0e4736';
const APP_SPAN = '10f067aa0ba902b7';
const { sent, prompt } = promptLog();

/** A bare OTLP/HTTP receiver: each request as one JSON line on stdout, its body base64 (decoded by the test). */
const COLLECTOR = `
const http = require('node:http');
http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    process.stdout.write(JSON.stringify({ path: req.url, type: req.headers['content-type'], encoding: req.headers['content-encoding'], from: req.socket.remoteAddress, body: Buffer.concat(chunks).toString('base64') }) + '\\n');
    res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
  });
}).listen(4318, '0.0.0.0', () => process.stdout.write('{"ready":true}\\n'));
`;

interface Received {
  path: string;
  type: string;
  encoding?: string;
  from: string;
  body: string;
}

interface Span {
  resource: Record<string, Value>;
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes: Record<string, Value>;
}

describeRoot('OTLP export from a pod: spans and metrics reach a collector outside, with the pod identity', () => {
  const session = new PodSession({
    tmpPrefix: 'aig-e2e-otlp-',
    hosts: [OPENAI_HOST, ANTHROPIC_HOST, PLAIN_HOST, COLLECTOR_HOST],
    keys: KEYS,
    app: {
      telemetry: {
        otlpEndpoint: `http://${COLLECTOR_HOST}:4318`,
        otlpCompression: 'gzip',
        metricExportIntervalMs: 500,
        resourceAttributes: { 'deployment.environment.name': 'e2e' },
        auditLog: 'stdout',
      },
    },
  });
  let collector: Background;
  let proxy: Background;

  beforeAll(async () => {
    await session.start();
    const [cmd, args] = netnsExec(session.net.out, [process.execPath, '-e', COLLECTOR]);
    collector = new Background(cmd, args);
    await collector.waitFor('the collector to listen', () => collector.stdout.includes('{"ready":true}'));
    proxy = await session.startProxy();
  });
  afterAll(async () => {
    await collector?.stop();
    await session.stop();
  });

  const received = (): Received[] =>
    collector.stdout
      .split('\n')
      .filter((l) => l.startsWith('{"path"'))
      .map((l) => JSON.parse(l) as Received);
  const decoded = (r: Received): unknown => otlpBody(r.path, r.type, r.encoding, Buffer.from(r.body, 'base64'));

  function spans(): Span[] {
    const out: Span[] = [];
    for (const r of received().filter((x) => x.path === '/v1/traces')) {
      const body = decoded(r) as { resourceSpans: { resource: { attributes: never }; scopeSpans: { spans: (Omit<Span, 'resource' | 'attributes'> & { attributes: never })[] }[] }[] };
      for (const rs of body.resourceSpans) for (const ss of rs.scopeSpans) for (const s of ss.spans) out.push({ ...s, resource: attrs(rs.resource.attributes), attributes: attrs(s.attributes) });
    }
    return out;
  }

  function records(): AuditRecord[] {
    return proxy.stdout
      .split('\n')
      .filter((l) => l.startsWith('{"schema":"aigress.io/audit/v1"'))
      .map((l) => JSON.parse(l) as AuditRecord);
  }

  function curl(host: string, path: string, body: unknown, headers: string[]): Promise<{ code: number; stdout: string }> {
    const args = [CURL, '-sS', '-N', `https://${host}${path}`, '-H', 'content-type: application/json', '-d', JSON.stringify(body)];
    for (const h of headers) args.push('-H', h);
    return session.pod.exec(APP, args, { timeoutMs: 30_000 }).then((r) => ({ code: r.code ?? -1, stdout: r.stdout }));
  }

  /** The exported span of an audit record; spans are batched (OTEL_BSP_SCHEDULE_DELAY, 5 s by default). */
  async function spanOf(rec: AuditRecord): Promise<Span> {
    await collector.waitFor(`the span of ${rec.spanId}`, () => spans().some((s) => s.spanId === rec.spanId), 20_000);
    return spans().find((s) => s.spanId === rec.spanId)!;
  }

  it('the injected proxy carries the OTEL_* env from the injection values', () => {
    const env = findContainer(session.files.pod, PROXY).env;
    expect(env).toEqual(
      expect.arrayContaining([
        { name: 'OTEL_EXPORTER_OTLP_ENDPOINT', value: `http://${COLLECTOR_HOST}:4318` },
        { name: 'OTEL_EXPORTER_OTLP_COMPRESSION', value: 'gzip' },
        { name: 'OTEL_METRIC_EXPORT_INTERVAL', value: '500' },
        { name: 'OTEL_RESOURCE_ATTRIBUTES', value: 'deployment.environment.name=e2e' },
      ]),
    );
  });

  it("a JSON call: one CLIENT span, the app's trace its parent, the provider given the proxy span's context", async () => {
    const mark = session.fake.mark();
    const body = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: prompt('otlp json') }] };
    const r = await curl(OPENAI_HOST, '/v1/chat/completions', body, [`authorization: Bearer ${KEYS.openai}`, `traceparent: 00-${APP_TRACE}-${APP_SPAN}-01`]);
    expect(r.code).toBe(0);
    await proxy.waitFor('the audit record', () => records().length >= 1, 10_000);
    const rec = records()[0]!;
    const span = await spanOf(rec);
    const req = session.fake.requestsSince(mark)[0] as RequestRecord;
    const answer = session.fake.answersSince(mark)[0]!;
    expect(span).toMatchObject({ traceId: APP_TRACE, parentSpanId: APP_SPAN, kind: 3, name: 'chat gpt-4o-mini' });
    expect(req.headers.traceparent).toBe(`00-${APP_TRACE}-${span.spanId}-01`);
    expect(span.attributes).toMatchObject({
      'gen_ai.operation.name': 'chat',
      'gen_ai.provider.name': 'openai',
      'gen_ai.request.model': 'gpt-4o-mini',
      'gen_ai.usage.input_tokens': answer.usage.input,
      'gen_ai.usage.output_tokens': answer.usage.output,
      'server.address': OPENAI_HOST,
      'server.port': 443,
      'http.response.status_code': 200,
      'aigress.decision': 'allow',
      'aigress.policy.name': 'team-a/e2e',
      'aigress.provider.request_id': rec.providerRequestId!,
    });
    // The pod's identity, from the downward API env of the injected spec, plus the chart's resource attributes.
    expect(span.resource).toMatchObject({
      'service.name': 'aigress-proxy',
      'k8s.namespace.name': 'team-a',
      'k8s.pod.name': 'e2e-app',
      'service.instance.id': 'e2e-app',
      'aigress.service_account': 'e2e-app',
      'deployment.environment.name': 'e2e',
    });
  });

  it('a streamed call: a span of its own, with the trace the proxy started', async () => {
    const body = { model: 'claude-haiku-4-5', max_tokens: 50, stream: true, messages: [{ role: 'user', content: prompt('otlp stream') }] };
    const r = await curl(ANTHROPIC_HOST, '/v1/messages', body, [`x-api-key: ${KEYS.anthropic}`, 'anthropic-version: 2023-06-01']);
    expect(r.code).toBe(0);
    await proxy.waitFor('the audit record', () => records().length >= 2, 10_000);
    const rec = records()[1]!;
    const span = await spanOf(rec);
    expect(span.traceId).toBe(rec.traceId);
    expect(span.parentSpanId).toBeUndefined();
    expect(span.attributes).toMatchObject({ 'gen_ai.provider.name': 'anthropic', 'aigress.stream': true, 'gen_ai.response.finish_reasons': ['end_turn'] });
  });

  it('a request refused before the pipeline (421, Host ≠ SNI) has its span too', async () => {
    const r = await session.pod.exec(APP, [CURL, '-sS', '-o', '/dev/null', '-w', '%{http_code}', `https://${OPENAI_HOST}/v1/chat/completions`, '-H', `host: ${ANTHROPIC_HOST}`, '-d', '{}'], { timeoutMs: 30_000 });
    expect(r.stdout).toBe('421');
    await proxy.waitFor('the audit record', () => records().length >= 3, 10_000);
    const rec = records()[2]!;
    expect(rec).toMatchObject({ status: 421, decision: { outcome: 'deny', reason: 'misdirected', by: 'proxy' } });
    const span = await spanOf(rec);
    expect(span.attributes).toMatchObject({ 'error.type': '421', 'aigress.deny.reason': 'misdirected' });
  });

  it('the metrics arrive with the same resource: GenAI histograms and the aigress counters', async () => {
    const latest = (): { metrics: { name: string; histogram?: { dataPoints: { attributes: never; count: string }[] }; sum?: { dataPoints: { attributes: never; asInt?: string }[] } }[]; resource: Record<string, Value> } | undefined => {
      const m = received().filter((x) => x.path === '/v1/metrics').pop();
      if (!m) return undefined;
      const body = decoded(m) as { resourceMetrics: { resource: { attributes: never }; scopeMetrics: { metrics: never[] }[] }[] };
      const rm = body.resourceMetrics[0]!;
      return { resource: attrs(rm.resource.attributes), metrics: rm.scopeMetrics.flatMap((s) => s.metrics) };
    };
    const count = (name: string, match: Record<string, Value>): number => {
      const l = latest();
      const m = l?.metrics.find((x) => x.name === name);
      const points = [...(m?.histogram?.dataPoints ?? []), ...(m?.sum?.dataPoints ?? [])] as { attributes: never; count?: string; asInt?: string }[];
      return points.filter((p) => Object.entries(match).every(([k, v]) => attrs(p.attributes)[k] === v)).reduce((n, p) => n + Number(p.count ?? p.asInt ?? 0), 0);
    };
    await collector.waitFor('metrics with both calls', () => count('gen_ai.client.operation.duration', {}) >= 2, 10_000);
    expect(latest()!.resource).toMatchObject({ 'k8s.pod.name': 'e2e-app', 'k8s.namespace.name': 'team-a', 'deployment.environment.name': 'e2e' });
    expect(count('gen_ai.client.token.usage', { 'gen_ai.provider.name': 'openai', 'gen_ai.token.type': 'input', 'server.address': OPENAI_HOST })).toBe(1);
    expect(count('gen_ai.client.token.usage', { 'gen_ai.provider.name': 'anthropic', 'gen_ai.token.type': 'output' })).toBe(1);
    expect(count('gen_ai.client.operation.time_per_output_chunk', { 'gen_ai.provider.name': 'anthropic' })).toBeGreaterThan(0);
    expect(count('aigress_requests_total', { provider: 'openai', decision: 'allow' })).toBe(1);
  });

  it('the export came from the pod, as protobuf, gzipped, and holds no prompt and no key', () => {
    const all = received();
    expect(all.length).toBeGreaterThan(0);
    for (const r of all) {
      expect(r.from).toBe(session.net.podAddr);
      expect(r.type).toBe('application/x-protobuf');
      expect(r.encoding).toBe('gzip');
      const text = JSON.stringify(decoded(r));
      for (const s of [...sent, KEYS.openai, KEYS.anthropic]) expect(text).not.toContain(s);
    }
  });
});
