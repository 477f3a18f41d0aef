// OTLP export through the real pipeline runner (test/unit/pipeline/harness.ts): for a JSON and a streamed call of
// every provider, the in-process collector receives one CLIENT span with the GenAI attributes, and the GenAI
// metrics with their OpenTelemetry attributes; trace context is propagated; denials and audit records are checked.
import type { IncomingHttpHeaders } from 'node:http';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../../shared/log.js';
import type { ContentCodec } from '../../../shared/providers/content.js';
import { buildPipeline, newExchange, pipelineOf, type Exchange, type Pipeline, type PipelineServices, type Processor } from '../../../sidecar/pipeline/index.js';
import type { AuditRecord } from '../../../sidecar/telemetry/audit-record.js';
import { telemetryConfig } from '../../../sidecar/telemetry/config.js';
import { createTelemetry } from '../../../sidecar/telemetry/create.js';
import type { TelemetryServices } from '../../../sidecar/telemetry/types.js';
import { exchange, policy, respond, runRequest, withRegistry } from '../pipeline/harness.js';
import { fixture } from '../providers/support.js';
import { points, startCollector, type Collector, type ReceivedSpan } from './collector.js';

const JSON_H = { 'content-type': 'application/json', 'x-request-id': 'req_abc123' };
const SSE_H = { 'content-type': 'text/event-stream', 'request-id': 'req_sse_1' };
const ES_H = { 'content-type': 'application/vnd.amazon.eventstream', 'x-amzn-requestid': '5e7d2a1c-0000-4c1e-9d7a-2f3b4c5d6e7f' };
const ALL = ['openai', 'azure-openai', 'anthropic', 'gemini', 'vertex-ai', 'bedrock', 'mistral'];
const VERTEX = '/v1/projects/p/locations/us-central1/publishers';
const BEDROCK_MODEL = '/model/eu.anthropic.claude-sonnet-4-20250514-v1%3A0';

interface Case {
  provider: string;
  otelName: string;
  host: string;
  path: string;
  body: unknown;
  headers: IncomingHttpHeaders;
  fixture: [string, string];
  operation: string;
  model: string;
  finish: string[];
  stream: boolean;
}

const CASES: Case[] = [
  { provider: 'openai', otelName: 'openai', host: 'api.openai.com', path: '/v1/chat/completions', body: { model: 'gpt-4o' }, headers: JSON_H, fixture: ['openai', 'chat.json'], operation: 'chat', model: 'gpt-4o', finish: ['stop'], stream: false },
  { provider: 'openai', otelName: 'openai', host: 'api.openai.com', path: '/v1/chat/completions', body: { model: 'gpt-4o', stream: true, stream_options: { include_usage: true } }, headers: SSE_H, fixture: ['openai', 'chat-stream-include-usage.sse'], operation: 'chat', model: 'gpt-4o', finish: ['stop'], stream: true },
  { provider: 'azure-openai', otelName: 'azure.ai.openai', host: 'myres.openai.azure.com', path: '/openai/deployments/gpt4o/chat/completions?api-version=2024-10-21', body: {}, headers: JSON_H, fixture: ['azure-openai', 'chat.json'], operation: 'chat', model: 'gpt4o', finish: ['stop'], stream: false },
  { provider: 'azure-openai', otelName: 'azure.ai.openai', host: 'myres.openai.azure.com', path: '/openai/deployments/gpt4o/chat/completions?api-version=2024-10-21', body: { stream: true, stream_options: { include_usage: true } }, headers: SSE_H, fixture: ['azure-openai', 'chat-stream.sse'], operation: 'chat', model: 'gpt4o', finish: ['stop'], stream: true },
  { provider: 'anthropic', otelName: 'anthropic', host: 'api.anthropic.com', path: '/v1/messages', body: { model: 'claude-sonnet-4-5' }, headers: JSON_H, fixture: ['anthropic', 'messages.json'], operation: 'chat', model: 'claude-sonnet-4-5', finish: ['end_turn'], stream: false },
  { provider: 'anthropic', otelName: 'anthropic', host: 'api.anthropic.com', path: '/v1/messages', body: { model: 'claude-sonnet-4-5', stream: true }, headers: SSE_H, fixture: ['anthropic', 'messages-stream-cache.sse'], operation: 'chat', model: 'claude-sonnet-4-5', finish: ['tool_use'], stream: true },
  { provider: 'gemini', otelName: 'gcp.gemini', host: 'generativelanguage.googleapis.com', path: '/v1beta/models/gemini-2.5-flash:generateContent', body: {}, headers: JSON_H, fixture: ['gemini', 'generate.json'], operation: 'generate_content', model: 'gemini-2.5-flash', finish: ['STOP'], stream: false },
  { provider: 'gemini', otelName: 'gcp.gemini', host: 'generativelanguage.googleapis.com', path: '/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse', body: {}, headers: SSE_H, fixture: ['gemini', 'stream.sse'], operation: 'generate_content', model: 'gemini-2.5-flash', finish: ['STOP'], stream: true },
  { provider: 'vertex-ai', otelName: 'gcp.vertex_ai', host: 'us-central1-aiplatform.googleapis.com', path: `${VERTEX}/anthropic/models/claude-sonnet-4@20250514:rawPredict`, body: {}, headers: JSON_H, fixture: ['vertex-ai', 'anthropic-raw.json'], operation: 'chat', model: 'claude-sonnet-4@20250514', finish: ['end_turn'], stream: false },
  { provider: 'vertex-ai', otelName: 'gcp.vertex_ai', host: 'us-central1-aiplatform.googleapis.com', path: `${VERTEX}/google/models/gemini-2.0-flash-001:streamGenerateContent?alt=sse`, body: {}, headers: SSE_H, fixture: ['vertex-ai', 'gemini-stream.sse'], operation: 'generate_content', model: 'gemini-2.0-flash-001', finish: ['STOP'], stream: true },
  { provider: 'bedrock', otelName: 'aws.bedrock', host: 'bedrock-runtime.eu-central-1.amazonaws.com', path: `${BEDROCK_MODEL}/converse`, body: {}, headers: JSON_H, fixture: ['bedrock', 'converse.json'], operation: 'chat', model: 'anthropic.claude-sonnet-4-20250514-v1:0', finish: ['end_turn'], stream: false },
  { provider: 'bedrock', otelName: 'aws.bedrock', host: 'bedrock-runtime.eu-central-1.amazonaws.com', path: `${BEDROCK_MODEL}/converse-stream`, body: {}, headers: ES_H, fixture: ['bedrock', 'converse-stream.eventstream'], operation: 'chat', model: 'anthropic.claude-sonnet-4-20250514-v1:0', finish: ['end_turn'], stream: true },
  { provider: 'bedrock', otelName: 'aws.bedrock', host: 'bedrock-runtime.eu-central-1.amazonaws.com', path: '/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/invoke-with-response-stream', body: {}, headers: ES_H, fixture: ['bedrock', 'invoke-stream.eventstream'], operation: 'chat', model: 'anthropic.claude-3-5-haiku-20241022-v1:0', finish: ['end_turn'], stream: true },
  { provider: 'mistral', otelName: 'mistral_ai', host: 'api.mistral.ai', path: '/v1/chat/completions', body: { model: 'mistral-large-latest' }, headers: JSON_H, fixture: ['mistral', 'chat.json'], operation: 'chat', model: 'mistral-large-latest', finish: ['stop'], stream: false },
  { provider: 'mistral', otelName: 'mistral_ai', host: 'api.mistral.ai', path: '/v1/chat/completions', body: { model: 'mistral-large-latest', stream: true }, headers: SSE_H, fixture: ['mistral', 'chat-stream.sse'], operation: 'chat', model: 'mistral-large-latest', finish: ['stop'], stream: true },
];

const IDENTITY = { namespace: 'team-a', pod: 'chat-7d9f-abcde', serviceAccount: 'chat', workload: 'Deployment/chat' };

let collector: Collector;
let telemetry: TelemetryServices;
const audits: AuditRecord[] = [];

async function telemetryServices(env: Record<string, string>, registry: Registry): Promise<{ services: PipelineServices; telemetry: TelemetryServices }> {
  const log = createLogger('test', { level: 'silent' });
  const t = await createTelemetry({ config: telemetryConfig(env), identity: IDENTITY, registry, log });
  const withAudit: TelemetryServices = { ...t!, audit: { write: (r) => audits.push(r), close: async () => {} } };
  return { services: { registry, log, now: Date.now, telemetry: withAudit }, telemetry: withAudit };
}

const registry = new Registry();
let pipeline: Pipeline;
const p = policy({ providers: ALL, regions: { allow: [], unknown: 'allow' } });

beforeAll(async () => {
  collector = await startCollector();
  const s = await telemetryServices({ OTEL_EXPORTER_OTLP_ENDPOINT: collector.url, OTEL_EXPORTER_OTLP_HEADERS: 'x-api-key=secret%20key' }, registry);
  telemetry = s.telemetry;
  pipeline = withRegistry(buildPipeline(p, s.services), registry);
});
afterAll(async () => {
  await telemetry.otlp?.close();
  await collector.close();
});

async function run(c: Case, headers: IncomingHttpHeaders = {}): Promise<{ ex: Exchange; span: ReceivedSpan | undefined }> {
  const { ex } = await runRequest(pipeline, exchange(p, c.host, c.path, c.body, { identity: IDENTITY, headers }));
  const body = fixture(...c.fixture);
  const mid = Math.floor(body.length / 2);
  await respond(pipeline, ex, 200, c.headers, [body.subarray(0, mid), body.subarray(mid)]);
  await telemetry.otlp!.flush();
  const traceparent = ex.request.headers.get('traceparent')!;
  const [, traceId, spanId] = traceparent.split('-');
  return { ex, span: collector.spans.find((s) => s.traceId === traceId && s.spanId === spanId) };
}

describe('OTLP export: one CLIENT span per AI call, for JSON and streamed calls of every provider', () => {
  for (const c of CASES) {
    it(`${c.provider} ${c.stream ? 'stream' : 'JSON'} (${c.fixture[1]})`, async () => {
      const { ex, span } = await run(c);
      expect(span, 'the collector received the span').toBeDefined();
      const a = span!.attributes;
      expect(span!.kind).toBe(3);
      expect(span!.name).toBe(`${c.operation} ${c.model}`);
      expect(span!.parentSpanId).toBeUndefined();
      expect(a['gen_ai.operation.name']).toBe(c.operation);
      expect(a['gen_ai.provider.name']).toBe(c.otelName);
      expect(a['gen_ai.request.model']).toBe(c.model);
      expect(a['gen_ai.response.finish_reasons']).toEqual(c.finish);
      expect(a['server.address']).toBe(c.host);
      expect(a['server.port']).toBe(443);
      expect(a['http.response.status_code']).toBe(200);
      expect(a['aigress.decision']).toBe('allow');
      expect(a['aigress.policy.name']).toBe('team-a/default');
      expect(a['aigress.stream']).toBe(c.stream);
      expect(a['error.type']).toBeUndefined();
      // Usage as metering read it, by type; the fixtures all report input and output.
      const u = ex.results.usage!;
      expect(u.input).toBeGreaterThan(0);
      expect(a['gen_ai.usage.input_tokens']).toBe(u.input);
      expect(a['gen_ai.usage.output_tokens']).toBe(u.output);
      expect(a['gen_ai.usage.cache_read.input_tokens']).toBe(u.cachedInput);
      expect(a['gen_ai.response.model']).toBe(ex.results.responseModel);
      // No content unless capture is enabled.
      expect(a['gen_ai.input.messages']).toBeUndefined();
      expect(a['gen_ai.output.messages']).toBeUndefined();
      expect(span!.end).toBeGreaterThan(span!.start);
      expect(span!.resource).toMatchObject({
        'service.name': 'aigress-proxy',
        'k8s.namespace.name': 'team-a',
        'k8s.pod.name': 'chat-7d9f-abcde',
        'k8s.deployment.name': 'chat',
        'aigress.service_account': 'chat',
        'aigress.workload': 'Deployment/chat',
      });
      // The audit record of the same call carries its trace id and the provider's request id.
      const rec = audits.find((r) => r.spanId === span!.spanId)!;
      expect(rec.traceId).toBe(span!.traceId);
      expect(rec.providerRequestId).toBe(String(Object.entries(c.headers).find(([k]) => k !== 'content-type')![1]));
    });
  }

  it('the exact numbers of one call: OpenAI chat.json', async () => {
    const { span } = await run(CASES[0]!);
    expect(span!.attributes).toMatchObject({ 'gen_ai.usage.input_tokens': 1117, 'gen_ai.usage.output_tokens': 46, 'gen_ai.usage.cache_read.input_tokens': 1024, 'gen_ai.response.model': 'gpt-4o-2024-08-06' });
    expect(span!.attributes['aigress.cost_usd']).toBeCloseTo(0.0019725, 9);
    expect(collector.requests.find((r) => r.path === '/v1/traces')!.headers['x-api-key']).toBe('secret key');
  });

  it('exports the GenAI metrics with their OpenTelemetry names and attributes, and the aigress counters', async () => {
    await telemetry.otlp!.flush();
    for (const c of CASES) {
      const match = { 'gen_ai.provider.name': c.otelName, 'server.address': c.host, 'server.port': 443 };
      const dur = points(collector, 'gen_ai.client.operation.duration', match);
      expect(dur.length, `${c.provider} duration`).toBeGreaterThan(0);
      expect(dur[0]!.unit).toBe('s');
      expect(dur[0]!.bucketCounts!.length).toBe(dur[0]!.bounds!.length + 1);
      expect(points(collector, 'gen_ai.client.token.usage', { ...match, 'gen_ai.token.type': 'input' }).length, `${c.provider} tokens`).toBeGreaterThan(0);
      const perChunk = points(collector, 'gen_ai.client.operation.time_per_output_chunk', { ...match, 'gen_ai.request.model': c.model });
      const ttfc = points(collector, 'gen_ai.client.operation.time_to_first_chunk', { ...match, 'gen_ai.request.model': c.model });
      if (c.stream) {
        expect(perChunk.reduce((s, x) => s + x.value, 0), `${c.provider} chunks`).toBeGreaterThan(0);
        expect(ttfc.reduce((s, x) => s + x.value, 0)).toBeGreaterThan(0);
      }
    }
    const usage = points(collector, 'gen_ai.client.token.usage', { 'gen_ai.provider.name': 'openai', 'gen_ai.token.type': 'output', 'gen_ai.response.model': 'gpt-4o-2024-08-06' });
    expect(usage.reduce((s, x) => s + (x.sum ?? 0), 0)).toBe(46 * 2); // chat.json ran twice
    const tokens = points(collector, 'aigress_tokens_total', { provider: 'openai', model: 'gpt-4o', type: 'input' });
    expect(tokens).toHaveLength(1);
    expect(tokens[0]!.type).toBe('sum');
    expect(tokens[0]!.monotonic).toBe(true);
    expect(points(collector, 'gen_ai_client_token_usage')).toEqual([]); // the Prometheus copies are not sent twice
  });
});

describe('trace context', () => {
  const c = CASES[0]!;
  const APP_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
  const APP_SPAN = '00f067aa0ba902b7';

  it("makes the proxy's span the child of the app's traceparent, and sends the provider the proxy span's context", async () => {
    const { ex, span } = await run(c, { traceparent: `00-${APP_TRACE}-${APP_SPAN}-01`, tracestate: 'congo=t61rcWkgMzE' });
    expect(span!.traceId).toBe(APP_TRACE);
    expect(span!.parentSpanId).toBe(APP_SPAN);
    expect(span!.traceState).toBe('congo=t61rcWkgMzE');
    expect(ex.request.headers.get('traceparent')).toBe(`00-${APP_TRACE}-${span!.spanId}-01`);
    expect(ex.request.headers.getAll('traceparent')).toHaveLength(1);
    expect(ex.request.headers.get('tracestate')).toBe('congo=t61rcWkgMzE');
  });

  it('starts a trace when the app sends none, or an invalid one (and drops its tracestate)', async () => {
    for (const headers of [{}, { traceparent: '00-00000000000000000000000000000000-00f067aa0ba902b7-01', tracestate: 'a=b' }, { traceparent: 'garbage' }]) {
      const { ex, span } = await run(c, headers);
      expect(span).toBeDefined();
      expect(span!.parentSpanId).toBeUndefined();
      expect(span!.traceId).toMatch(/^[0-9a-f]{32}$/);
      expect(span!.traceId).not.toBe('0'.repeat(32));
      expect(ex.request.headers.get('traceparent')).toBe(`00-${span!.traceId}-${span!.spanId}-01`);
      expect(ex.request.headers.get('tracestate')).toBeUndefined();
    }
  });

  it("respects an app's decision not to sample: no span exported, the context still propagated unsampled", async () => {
    const before = collector.spans.length;
    const { ex, span } = await run(c, { traceparent: `00-${APP_TRACE}-${APP_SPAN}-00` });
    expect(span).toBeUndefined();
    expect(collector.spans.length).toBe(before);
    expect(ex.request.headers.get('traceparent')).toMatch(new RegExp(`^00-${APP_TRACE}-[0-9a-f]{16}-00$`));
  });

  it("never changes a traceparent the app's own SigV4 signature covers (the provider would reject the request)", async () => {
    const bedrock = CASES[10]!;
    const sent = `00-${APP_TRACE}-${APP_SPAN}-01`;
    const authorization = 'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20250101/eu-central-1/bedrock/aws4_request, SignedHeaders=content-type;host;traceparent;x-amz-date, Signature=abc';
    const { ex } = await runRequest(pipeline, exchange(p, bedrock.host, bedrock.path, {}, { identity: IDENTITY, headers: { traceparent: sent, authorization } }));
    expect(ex.request.headers.get('traceparent')).toBe(sent);
  });
});

describe('denials', () => {
  it('a denied call has a span with error.type, the decision and the processor that acted, and an audit record', async () => {
    const reg = new Registry();
    const s = await telemetryServices({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${collector.url}/v1/traces` }, reg);
    const denyPolicy = policy({ providers: ALL, models: { allow: [], deny: ['gpt-4o*'] } });
    const pl = withRegistry(buildPipeline(denyPolicy, s.services), reg);
    const { ex, verdict } = await runRequest(pl, exchange(denyPolicy, 'api.openai.com', '/v1/chat/completions', { model: 'gpt-4o', messages: [{ role: 'user', content: 'my secret prompt' }] }, { identity: IDENTITY }));
    expect(verdict.action).toBe('deny');
    const { runnerFor } = await import('../pipeline/harness.js');
    await runnerFor(reg).end(ex, { complete: false, forwarded: false, status: 403, framingFailed: false });
    await s.telemetry.otlp!.flush();
    const rec = audits[audits.length - 1]!;
    const span = collector.spans.find((x) => x.spanId === rec.spanId)!;
    expect(span.attributes).toMatchObject({ 'aigress.decision': 'deny', 'error.type': '403', 'aigress.deny.reason': 'model_denied', 'aigress.denied_by': 'models', 'aigress.processors': ['models:deny:model_denied'] });
    expect(span.status.code).toBe(2);
    expect(rec.decision).toMatchObject({ outcome: 'deny', reason: 'model_denied', by: 'models' });
    expect(rec.level).toBe('warn');
    expect(rec.processors).toEqual([{ processor: 'models', type: 'models', phase: 'admit', action: 'deny', reason: 'model_denied' }]);
    // The request never left: no traceparent was set upstream, no metrics for it, and no prompt text anywhere.
    expect(ex.request.headers.get('traceparent')).toBeUndefined();
    expect(JSON.stringify({ rec, span }, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v))).not.toContain('secret prompt');
    await s.telemetry.otlp!.close();
  });
});

describe('content capture (off by default; when on, what went upstream, after redaction)', () => {
  // No adapter ships a content codec yet (filters bring them); a small OpenAI chat codec plays one here.
  const codec: ContentCodec = {
    format: 'test-openai-chat',
    request: (json) =>
      (Array.isArray(json.messages) ? json.messages : []).flatMap((m: unknown, i) => {
        const msg = m as { role?: string; content?: unknown };
        return typeof msg.content === 'string' ? [{ id: `messages.${i}.content`, path: ['messages', i, 'content'], role: msg.role ?? 'user', kind: 'text' as const, text: msg.content }] : [];
      }),
    response: (json) =>
      (Array.isArray(json.choices) ? json.choices : []).flatMap((c: unknown, i) => {
        const text = (c as { message?: { content?: unknown } }).message?.content;
        return typeof text === 'string' ? [{ id: `choices.${i}`, path: ['choices', i, 'message', 'content'], role: 'assistant', kind: 'text' as const, text }] : [];
      }),
    event: (payload) =>
      (Array.isArray(payload.choices) ? payload.choices : []).flatMap((c: unknown, i) => {
        const text = (c as { delta?: { content?: unknown } }).delta?.content;
        return typeof text === 'string' && text !== '' ? [{ id: `choices.${i}`, path: ['choices', i, 'delta', 'content'], role: 'assistant', kind: 'text' as const, text }] : [];
      }),
  };
  // A transform step standing in for a PII filter: the e-mail address never goes upstream.
  const redact: Processor = {
    name: 'redact-email',
    type: 'test',
    phase: 'transform',
    onRequest(ex) {
      ex.request.body.edit((j) => {
        for (const m of j.messages as { content: string }[]) m.content = m.content.replace(/\S+@\S+/g, '[EMAIL_1]');
      });
      ex.actions.push({ processor: 'redact-email', type: 'test', phase: 'transform', action: 'redact', found: { email: 1 } });
      return { action: 'continue' };
    },
  };

  async function captured(env: Record<string, string>, stream: boolean): Promise<ReceivedSpan> {
    const reg = new Registry();
    const s = await telemetryServices({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${collector.url}/v1/traces`, ...env }, reg);
    const pl = withRegistry(pipelineOf([...buildPipeline(p, s.services).processors, redact]), reg);
    const base = exchange(p, 'api.openai.com', '/v1/chat/completions', { model: 'gpt-4o', stream, ...(stream && { stream_options: { include_usage: true } }), messages: [{ role: 'user', content: 'mail me at jane@example.com' }] }, { identity: IDENTITY });
    const ex = newExchange({
      adapter: { ...base.adapter, codec: () => codec },
      host: base.request.host,
      method: 'POST',
      path: base.request.path,
      headers: base.request.headers.toRaw(),
      appHeaders: base.appHeaders,
      body: base.request.body.bytes(),
      hadBody: true,
      policy: p,
      identity: IDENTITY,
      signal: new AbortController().signal,
    });
    await runRequest(pl, ex);
    await respond(pl, ex, 200, stream ? SSE_H : JSON_H, [fixture('openai', stream ? 'chat-stream-include-usage.sse' : 'chat.json')]);
    await s.telemetry.otlp!.flush();
    await s.telemetry.otlp!.close();
    const [, , spanId] = ex.request.headers.get('traceparent')!.split('-');
    return collector.spans.find((x) => x.spanId === spanId)!;
  }

  it('puts nothing on spans unless enabled', async () => {
    const span = await captured({}, false);
    expect(span.attributes['gen_ai.input.messages']).toBeUndefined();
    expect(span.attributes['gen_ai.output.messages']).toBeUndefined();
    expect(span.attributes['aigress.processors']).toEqual(['redact-email:redact:email=1']);
  });

  it('captures the redacted request and the completion, JSON and streamed', async () => {
    for (const stream of [false, true]) {
      const span = await captured({ OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT: 'true' }, stream);
      const input = JSON.parse(String(span.attributes['gen_ai.input.messages'])) as unknown;
      expect(input).toEqual([{ role: 'user', parts: [{ type: 'text', content: 'mail me at [EMAIL_1]' }] }]);
      expect(JSON.stringify(span.attributes)).not.toContain('jane@example.com');
      const output = JSON.parse(String(span.attributes['gen_ai.output.messages'])) as { role: string; parts: { content: string }[]; finish_reason: string }[];
      expect(output).toHaveLength(1);
      expect(output[0]!.role).toBe('assistant');
      expect(output[0]!.finish_reason).toBe('stop');
      expect(output[0]!.parts[0]!.content.length).toBeGreaterThan(0);
    }
  });
});

describe('content capture with the pii filter: the completion as the app receives it, redactions applied', () => {
  const CAPTURE = { OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT: 'true' };
  const chatJson = (text: string): Buffer =>
    Buffer.from(JSON.stringify({ id: 'c1', object: 'chat.completion', model: 'gpt-4o', choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' }], usage: { prompt_tokens: 5, completion_tokens: 7, total_tokens: 12 } }));
  const chatSse = (parts: string[]): Buffer =>
    Buffer.from(
      [...parts.map((t) => ({ id: 'c1', object: 'chat.completion.chunk', model: 'gpt-4o', choices: [{ index: 0, delta: { content: t }, finish_reason: null }] })), { id: 'c1', object: 'chat.completion.chunk', model: 'gpt-4o', choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] }]
        .map((d) => `data: ${JSON.stringify(d)}\n\n`)
        .join('') + 'data: [DONE]\n\n',
    );

  async function call(filters: unknown[], prompt: string, answer: string, stream: boolean, env: Record<string, string> = CAPTURE): Promise<{ span?: ReceivedSpan; app: string; denied: boolean }> {
    const reg = new Registry();
    const s = await telemetryServices({ OTEL_EXPORTER_OTLP_ENDPOINT: collector.url, ...env }, reg);
    const pp = policy({ providers: ['openai'], regions: { allow: [], unknown: 'allow' }, filters });
    const pl = withRegistry(buildPipeline(pp, s.services), reg);
    const ex = exchange(pp, 'api.openai.com', '/v1/chat/completions', { model: 'gpt-4o', stream, messages: [{ role: 'user', content: prompt }] }, { identity: IDENTITY });
    await runRequest(pl, ex);
    const got = await respond(pl, ex, 200, stream ? SSE_H : JSON_H, [stream ? chatSse(answer.split(/(?<= )/)) : chatJson(answer)]);
    await s.telemetry.otlp!.flush();
    await s.telemetry.otlp!.close();
    const tp = ex.request.headers.get('traceparent');
    const span = tp ? collector.spans.find((x) => x.spanId === tp.split('-')[2]) : undefined;
    return { span, app: got.body.toString('utf8'), denied: got.denied !== undefined };
  }
  const output = (span: ReceivedSpan | undefined): string => {
    const v = span?.attributes['gen_ai.output.messages'];
    return v === undefined ? '' : (JSON.parse(String(v)) as { parts: { content: string }[] }[])[0]!.parts.map((x) => x.content).join('');
  };

  it('a response-phase redaction applies to the captured completion (JSON and streamed)', async () => {
    for (const stream of [false, true]) {
      const r = await call([{ type: 'pii', name: 'pii', action: 'redact', phase: 'response', detect: ['email'] }], 'who do I write to?', 'Write to bob.smith@example.org today please', stream);
      expect(r.app).not.toContain('bob.smith@example.org');
      expect(output(r.span)).toBe('Write to [EMAIL_1] today please');
      expect(JSON.stringify(r.span!.attributes)).not.toContain('bob.smith@example.org');
    }
  });

  it('text a response filter blocked is not captured', async () => {
    const json = await call([{ type: 'pii', name: 'pii', action: 'block', phase: 'response', detect: ['email'] }], 'hi', 'Write to bob.smith@example.org', false);
    expect(json.denied).toBe(true);
    expect(json.span!.attributes['gen_ai.output.messages']).toBeUndefined();
    const sse = await call([{ type: 'regex', name: 'no-secret', action: 'block', phase: 'response', pattern: 'SECRET-\\d+' }], 'hi', 'first part then SECRET-42 and more after it', true);
    expect(sse.app).not.toContain('SECRET-42');
    const captured = output(sse.span);
    // The filter held the text its window could still match in, then blocked: the app read no text, nor does the span.
    expect(sse.app).not.toContain('first');
    expect(captured).toBe('');
  });

  it('placeholders a request-side redaction restored for the app stay placeholders in the capture', async () => {
    for (const stream of [false, true]) {
      const r = await call([{ type: 'pii', name: 'pii', action: 'redact', restore: true, detect: ['email'] }], 'mail me at jane.doe@example.com', 'Sure, I will mail [EMAIL_1] now', stream);
      expect(r.app).toContain('jane.doe@example.com');
      expect(JSON.parse(String(r.span!.attributes['gen_ai.input.messages']))).toEqual([{ role: 'user', parts: [{ type: 'text', content: 'mail me at [EMAIL_1]' }] }]);
      expect(output(r.span)).toBe('Sure, I will mail [EMAIL_1] now');
      expect(JSON.stringify(r.span!.attributes)).not.toContain('jane.doe@example.com');
    }
  });

  it('with only metrics exported, no content is read (nothing would carry it)', async () => {
    let reads = 0;
    const reg = new Registry();
    const s = await telemetryServices({ OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: `${collector.url}/v1/metrics`, ...CAPTURE }, reg);
    expect(s.telemetry.otlp?.tracing).toBe(false);
    const base = exchange(p, 'api.openai.com', '/v1/chat/completions', { model: 'gpt-4o', messages: [{ role: 'user', content: 'hello' }] }, { identity: IDENTITY });
    const codec = base.adapter.codec!(base.described)!;
    const counting = { ...base.adapter, codec: () => ({ ...codec, request: (j: Parameters<ContentCodec['request']>[0]) => (reads++, codec.request(j)) }) };
    const ex = newExchange({ adapter: counting, host: base.request.host, method: 'POST', path: base.request.path, headers: base.request.headers.toRaw(), appHeaders: base.appHeaders, body: base.request.body.bytes(), hadBody: true, policy: p, identity: IDENTITY, signal: new AbortController().signal });
    const pl = withRegistry(buildPipeline(p, s.services), reg);
    await runRequest(pl, ex);
    await respond(pl, ex, 200, JSON_H, [chatJson('hi')]);
    await s.telemetry.otlp!.close();
    expect(reads).toBe(0);
  });
});
