// The real proxy with OTLP export and the audit log on: app → capture port → real pipeline → fake provider, the
// in-process collector receiving spans and metrics, the provider receiving the proxy span's trace context, and
// the audit file holding one record per call.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildPipeline } from '../../../sidecar/pipeline/index.js';
import type { AuditRecord } from '../../../sidecar/telemetry/audit-record.js';
import { telemetryConfig } from '../../../sidecar/telemetry/config.js';
import { callTls, createTestPki, fakeUpstream, type TestPki, type TestProxy, startTestProxy } from '../proxy/support.js';
import { fixture } from '../providers/support.js';
import { points, startCollector, type Collector } from './collector.js';

let pki: TestPki;
let proxy: TestProxy;
let collector: Collector;
let auditFile: string;
const seen: { host: string; headers: IncomingMessage['headers'] }[] = [];
const closers: (() => Promise<void>)[] = [];
const APP_TRACE = '0af7651916cd43dd8448eb211c80319c';
const APP_SPAN = 'b7ad6b7169203331';

function serve(host: string, type: string, body: Buffer, id: [string, string]) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    req.resume();
    req.on('end', () => {
      seen.push({ host, headers: req.headers });
      res.writeHead(200, { 'content-type': type, [id[0]]: id[1] });
      res.end(body);
    });
  };
}

beforeAll(async () => {
  pki = await createTestPki();
  collector = await startCollector();
  const openai = await fakeUpstream(pki, 'api.openai.com', serve('api.openai.com', 'application/json', fixture('openai', 'chat.json'), ['x-request-id', 'req_proxy_1']));
  const anthropic = await fakeUpstream(pki, 'api.anthropic.com', serve('api.anthropic.com', 'text/event-stream', fixture('anthropic', 'messages-stream.sse'), ['request-id', 'req_01Anthropic']));
  closers.push(openai.close, anthropic.close);
  auditFile = join(pki.dir, 'audit', 'audit.jsonl');
  proxy = await startTestProxy(pki, {
    buildPipeline,
    resolve: { 'api.openai.com': { host: '127.0.0.1', port: openai.port }, 'api.anthropic.com': { host: '127.0.0.1', port: anthropic.port } },
    identity: { namespace: 'team-a', pod: 'chat-0', serviceAccount: 'chat', workload: 'StatefulSet/chat' },
    telemetry: telemetryConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: collector.url, OTEL_BSP_SCHEDULE_DELAY: '20', OTEL_METRIC_EXPORT_INTERVAL: '100' }, { auditLog: auditFile }),
  });
  await proxy.handle.ready;
});

afterAll(async () => {
  await proxy.handle.close();
  for (const c of closers) await c();
  await collector.close();
});

async function until<T>(f: () => T | undefined): Promise<T> {
  for (let i = 0; i < 200; i++) {
    const v = f();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error('timed out waiting for the collector');
}

describe('the proxy with OTLP export enabled', () => {
  it("exports a span per call, the child of the app's traceparent, and sends the provider the proxy span's context", async () => {
    const r = await callTls(proxy.handle.capturePort, 'api.openai.com', pki.caPem, {
      headers: { 'content-type': 'application/json', traceparent: `00-${APP_TRACE}-${APP_SPAN}-01`, authorization: 'Bearer sk-test-secret' },
      body: JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'a private prompt' }] }),
    });
    expect(r.status).toBe(200);
    const span = await until(() => collector.spans.find((s) => s.traceId === APP_TRACE));
    expect(span.parentSpanId).toBe(APP_SPAN);
    expect(span.name).toBe('chat gpt-4o');
    expect(span.attributes).toMatchObject({
      'gen_ai.provider.name': 'openai',
      'gen_ai.response.model': 'gpt-4o-2024-08-06',
      'gen_ai.usage.input_tokens': 1117,
      'gen_ai.usage.output_tokens': 46,
      'gen_ai.response.finish_reasons': ['stop'],
      'aigress.decision': 'allow',
      'aigress.provider.request_id': 'req_proxy_1',
      'http.response.status_code': 200,
    });
    expect(span.resource).toMatchObject({ 'k8s.namespace.name': 'team-a', 'k8s.pod.name': 'chat-0', 'k8s.statefulset.name': 'chat' });
    const up = seen.find((s) => s.host === 'api.openai.com')!;
    expect(up.headers.traceparent).toBe(`00-${APP_TRACE}-${span.spanId}-01`);
    expect(JSON.stringify(collector.spans.map((s) => s.attributes))).not.toMatch(/private prompt|sk-test-secret/);
  });

  it('starts a trace for a streamed call without traceparent, and exports the stream metrics', async () => {
    const r = await callTls(proxy.handle.capturePort, 'api.anthropic.com', pki.caPem, {
      path: '/v1/messages',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'claude-sonnet-4-5', stream: true, max_tokens: 10 }),
    });
    expect(r.status).toBe(200);
    expect(r.body.equals(fixture('anthropic', 'messages-stream.sse'))).toBe(true);
    const up = seen.find((s) => s.host === 'api.anthropic.com')!;
    const [, traceId, spanId] = String(up.headers.traceparent).split('-');
    const span = await until(() => collector.spans.find((s) => s.spanId === spanId));
    expect(span.traceId).toBe(traceId);
    expect(span.parentSpanId).toBeUndefined();
    expect(span.attributes).toMatchObject({ 'gen_ai.provider.name': 'anthropic', 'aigress.stream': true, 'gen_ai.response.finish_reasons': ['end_turn'], 'aigress.provider.request_id': 'req_01Anthropic' });
    const chunks = await until(() => {
      const p = points(collector, 'gen_ai.client.operation.time_per_output_chunk', { 'gen_ai.provider.name': 'anthropic', 'server.address': 'api.anthropic.com' });
      return p.length > 0 ? p : undefined;
    });
    expect(chunks[0]!.value).toBeGreaterThan(1);
    expect(points(collector, 'aigress_requests_total', { provider: 'anthropic', decision: 'allow', code: '200' })[0]?.value).toBe(1);
  });

  it('writes one audit record per call to the audit file, apart from the operational log', async () => {
    await proxy.handle.drain(1_000);
    const records = readFileSync(auditFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as AuditRecord);
    expect(records).toHaveLength(2);
    const [openai, anthropic] = records;
    expect(openai).toMatchObject({ schema: 'aigress.io/audit/v1', provider: 'openai', status: 200, providerRequestId: 'req_proxy_1', traceId: APP_TRACE, decision: { outcome: 'allow' } });
    expect(anthropic).toMatchObject({ provider: 'anthropic', stream: true, providerRequestId: 'req_01Anthropic' });
    expect(openai!.bytes.request).toBeGreaterThan(0);
    expect(openai!.bytes.response).toBe(fixture('openai', 'chat.json').length);
    expect(readFileSync(auditFile, 'utf8')).not.toMatch(/private prompt|sk-test-secret/);
  });
});
