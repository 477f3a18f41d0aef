import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { buildPipeline } from '../../../sidecar/pipeline/index.js';
import { respond, services, withRegistry } from './harness.js';
import { fixture } from '../providers/support.js';
import { exchange, metric, policy, runRequest, runResponse, series, setup } from './harness.js';

const JSON_H = { 'content-type': 'application/json' };
const SSE_H = { 'content-type': 'text/event-stream' };
const ES_H = { 'content-type': 'application/vnd.amazon.eventstream' };

async function call(setupResult: ReturnType<typeof setup>, host: string, path: string, body: unknown, status: number, headers: Record<string, string>, response: Buffer, complete = true) {
  const { pipeline, policy: p } = setupResult;
  const { ex } = await runRequest(pipeline, exchange(p, host, path, body));
  const client = await runResponse(pipeline, ex, status, headers, [response.subarray(0, 100), response.subarray(100)], complete);
  return { ex, client };
}

describe('metering', () => {
  it('counts tokens by type, estimated cost and the GenAI histograms from a JSON response', async () => {
    const s = setup();
    const { ex, client } = await call(s, 'api.openai.com', '/v1/chat/completions', { model: 'gpt-4o' }, 200, JSON_H, fixture('openai', 'chat.json'));
    expect(client.equals(fixture('openai', 'chat.json'))).toBe(true);
    const t = (type: string) => metric(s.registry, 'aigress_tokens_total', { provider: 'openai', model: 'gpt-4o', type });
    expect([await t('input'), await t('output'), await t('cached_input'), await t('reasoning')]).toEqual([1117, 46, 1024, 0]);
    expect(await metric(s.registry, 'aigress_estimated_cost_usd_total', { provider: 'openai', model: 'gpt-4o' })).toBeCloseTo((93 * 2.5 + 1024 * 1.25 + 46 * 10) / 1e6, 12);
    const h = { gen_ai_operation_name: 'chat', gen_ai_provider_name: 'openai', gen_ai_request_model: 'gpt-4o' };
    expect(await metric(s.registry, 'gen_ai_client_token_usage_sum', { ...h, gen_ai_token_type: 'input' })).toBe(1117);
    expect(await metric(s.registry, 'gen_ai_client_token_usage_sum', { ...h, gen_ai_token_type: 'output' })).toBe(46);
    expect(await metric(s.registry, 'gen_ai_client_token_usage_bucket', { ...h, gen_ai_token_type: 'output', le: 64 })).toBe(1);
    expect(await metric(s.registry, 'gen_ai_client_token_usage_bucket', { ...h, gen_ai_token_type: 'output', le: 16 })).toBe(0);
    expect(await metric(s.registry, 'gen_ai_client_operation_duration_seconds_count', h)).toBe(1);
    expect(await metric(s.registry, 'gen_ai_client_operation_time_to_first_chunk_seconds_count')).toBe(0);
    expect(ex.facts).toMatchObject({ inputTokens: 1117, outputTokens: 46, cachedInputTokens: 1024, reasoningTokens: 0, responseModel: 'gpt-4o-2024-08-06' });
    expect(ex.facts.costUsd).toBeCloseTo(0.0019725, 9);
  });

  it('only reads: the response takes the passive path, so the proxy keeps the provider’s content-length', async () => {
    const { pipeline, policy: p } = setup();
    for (const [headers, body] of [[JSON_H, fixture('openai', 'chat.json')], [SSE_H, fixture('openai', 'chat-stream.sse')]] as const) {
      const { ex } = await runRequest(pipeline, exchange(p, 'api.openai.com', '/v1/chat/completions', { model: 'gpt-4o' }));
      const got = await respond(pipeline, ex, 200, headers, [body]);
      expect(got.sized).toBe(true);
      expect(got.body.equals(body)).toBe(true);
    }
  });

  it('meters an AWS event stream and records time to first chunk for streams', async () => {
    const s = setup();
    const body = fixture('bedrock', 'converse-stream.eventstream');
    await call(s, 'bedrock-runtime.eu-central-1.amazonaws.com', '/model/eu.anthropic.claude-sonnet-4-20250514-v1%3A0/converse-stream', {}, 200, ES_H, body);
    const model = 'anthropic.claude-sonnet-4-20250514-v1:0';
    expect(await metric(s.registry, 'aigress_tokens_total', { provider: 'bedrock', model, type: 'input' })).toBe(1177);
    expect(await metric(s.registry, 'aigress_tokens_total', { provider: 'bedrock', model, type: 'output' })).toBe(31);
    expect(await metric(s.registry, 'aigress_estimated_cost_usd_total', { provider: 'bedrock', model })).toBeCloseTo((25 * 3 + 1152 * 3.75 + 31 * 15) / 1e6, 12);
    expect(await metric(s.registry, 'gen_ai_client_operation_time_to_first_chunk_seconds_count', { gen_ai_provider_name: 'aws.bedrock' })).toBe(1);
  });

  it('counts a response without usage as missing, never as zero tokens', async () => {
    const s = setup();
    const { ex } = await call(s, 'myres.openai.azure.com', '/openai/deployments/gpt4o/chat/completions?api-version=2024-10-21', { stream: true }, 200, SSE_H, fixture('openai', 'chat-stream.sse'));
    expect(await metric(s.registry, 'aigress_usage_missing_total', { provider: 'azure-openai', operation: 'chat', model: 'gpt4o', reason: 'not_reported' })).toBe(1);
    expect(await series(s.registry, 'aigress_tokens_total')).toEqual([]);
    expect(ex.facts.usageMissing).toBe('not_reported');
    expect(ex.facts.inputTokens).toBeUndefined();
  });

  it('tells a broken stream and an unreadable body apart', async () => {
    const s = setup();
    await call(s, 'api.openai.com', '/v1/chat/completions', { model: 'gpt-4o', stream: true, stream_options: { include_usage: true } }, 200, SSE_H, fixture('openai', 'chat-stream.sse').subarray(0, 300), false);
    await call(s, 'api.anthropic.com', '/v1/messages', { model: 'claude-sonnet-4-5' }, 200, JSON_H, Buffer.from('<html>oops</html>'));
    expect(await metric(s.registry, 'aigress_usage_missing_total', { provider: 'openai', reason: 'incomplete' })).toBe(1);
    expect(await metric(s.registry, 'aigress_usage_missing_total', { provider: 'anthropic', reason: 'unreadable' })).toBe(1);
    expect(await metric(s.registry, 'gen_ai_client_operation_duration_seconds_count', { gen_ai_provider_name: 'openai', error_type: 'incomplete' })).toBe(1);
  });

  it('records errors as durations with error_type, without usage or missing-usage counts', async () => {
    const s = setup();
    await call(s, 'api.openai.com', '/v1/chat/completions', { model: 'gpt-4o' }, 429, JSON_H, Buffer.from('{"error":{"message":"rate limited"}}'));
    expect(await metric(s.registry, 'gen_ai_client_operation_duration_seconds_count', { error_type: '429' })).toBe(1);
    expect(await series(s.registry, 'aigress_usage_missing_total')).toEqual([]);
    expect(await series(s.registry, 'aigress_tokens_total')).toEqual([]);
  });

  it('does not meter operations that consume nothing, nor unknown paths', async () => {
    const s = setup();
    await call(s, 'api.anthropic.com', '/v1/messages/count_tokens', { model: 'claude-sonnet-4-5' }, 200, JSON_H, Buffer.from('{"input_tokens":2095}'));
    await call(s, 'api.openai.com', '/v1/models', '', 200, JSON_H, Buffer.from('{"object":"list","data":[]}'));
    expect(await series(s.registry, 'aigress_tokens_total')).toEqual([]);
    expect(await series(s.registry, 'aigress_usage_missing_total')).toEqual([]);
    expect(await metric(s.registry, 'gen_ai_client_operation_duration_seconds_count', { gen_ai_operation_name: 'unknown' })).toBe(1);
  });

  it('asks upstream for an unencoded body on metered requests only', async () => {
    const { pipeline, policy: p } = setup();
    const gz = { headers: { 'accept-encoding': 'gzip, deflate, br' } };
    expect((await runRequest(pipeline, exchange(p, 'api.openai.com', '/v1/chat/completions', { model: 'gpt-4o' }, gz))).ex.request.headers.get('accept-encoding')).toBe('identity');
    expect((await runRequest(pipeline, exchange(p, 'api.openai.com', '/v1/files', '', { ...gz, method: 'GET' }))).ex.request.headers.get('accept-encoding')).toBe('gzip, deflate, br');
  });

  it('puts pod identity on metrics only as configured', async () => {
    const withIds = setup(policy({ metering: { identityLabels: ['namespace', 'workload'] } }));
    await call(withIds, 'api.mistral.ai', '/v1/chat/completions', { model: 'mistral-large-latest' }, 200, JSON_H, fixture('mistral', 'chat.json'));
    const labels = (await series(withIds.registry, 'aigress_tokens_total'))[0]!;
    expect(labels).toMatchObject({ source_namespace: 'team-a', source_workload: 'chat' });
    expect(labels).not.toHaveProperty('source_pod');
    const without = setup();
    await call(without, 'api.mistral.ai', '/v1/chat/completions', { model: 'mistral-large-latest' }, 200, JSON_H, fixture('mistral', 'chat.json'));
    expect(Object.keys((await series(without.registry, 'aigress_tokens_total'))[0]!).sort()).toEqual(['model', 'provider', 'type']);
  });
});

describe('model labels', () => {
  it('fold names outside the price catalogue into "other" past the limit; catalogue names keep theirs', async () => {
    const s = setup(policy({ metering: { modelLabelLimit: 2 } }));
    const label = async (model: string) =>
      (await runRequest(s.pipeline, exchange(s.policy, 'api.openai.com', '/v1/chat/completions', { model }))).ex.facts.modelLabel;
    expect(await label('ft:gpt-4o:acme:a')).toBe('ft:gpt-4o:acme:a');
    expect(await label('ft:gpt-4o:acme:b')).toBe('ft:gpt-4o:acme:b');
    expect(await label('ft:gpt-4o:acme:c')).toBe('other');
    expect(await label('ft:gpt-4o:acme:a')).toBe('ft:gpt-4o:acme:a');
    expect(await label('gpt-4.1-mini')).toBe('gpt-4.1-mini');
    expect(await label('x'.repeat(200))).toBe('other');
    expect((await runRequest(s.pipeline, exchange(s.policy, 'api.openai.com', '/v1/models', '', { method: 'GET' }))).ex.facts.modelLabel).toBe('unknown');
  });

  it('keep their state and metrics across pipeline rebuilds on the same registry', async () => {
    const registry = new Registry();
    const p1 = policy({ metering: { modelLabelLimit: 1 } });
    const first = buildPipeline(p1, services(registry));
    const label = async (pipeline: typeof first, p: typeof p1, model: string) =>
      (await runRequest(pipeline, exchange(p, 'api.openai.com', '/v1/chat/completions', { model }))).ex.facts.modelLabel;
    expect(await label(first, p1, 'custom-a')).toBe('custom-a');
    const p2 = policy({ metering: { modelLabelLimit: 1 }, regions: { allow: ['us'] } });
    const second = buildPipeline(p2, services(registry)); // must not throw "already registered"
    expect(await label(second, p2, 'custom-b')).toBe('other');
    const { ex } = await runRequest(second, exchange(p2, 'api.openai.com', '/v1/chat/completions', { model: 'gpt-4o' }));
    await runResponse(withRegistry(second, registry), ex, 200, JSON_H, [fixture('openai', 'chat.json')]);
    const { ex: ex1 } = await runRequest(first, exchange(p1, 'api.openai.com', '/v1/chat/completions', { model: 'gpt-4o' }));
    await runResponse(withRegistry(first, registry), ex1, 200, JSON_H, [fixture('openai', 'chat.json')]);
    expect(await metric(registry, 'aigress_tokens_total', { type: 'input' })).toBe(2 * 1117);
    expect(registry.getMetricsAsArray().filter((m) => m.name === 'aigress_tokens_total')).toHaveLength(1);
  });
});
