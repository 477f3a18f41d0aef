import { describe, expect, it } from 'vitest';
import { chunkings, fixture } from '../providers/support.js';
import { exchange, metric, runRequest, runResponse, setup } from './harness.js';

const SSE_H = { 'content-type': 'text/event-stream; charset=utf-8' };

describe('openai-stream-usage', () => {
  const body = { model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'Hallo' }] };

  it('asks upstream for usage, meters it, and gives the client the stream it asked for, under every chunking', async () => {
    const upstream = fixture('openai', 'chat-stream-include-usage.sse');
    const expected = fixture('openai', 'chat-stream.sse');
    const s = setup();
    const wrong: string[] = [];
    let runs = 0;
    for (const { name, chunks } of chunkings(upstream, 20)) {
      const { ex } = await runRequest(s.pipeline, exchange(s.policy, 'api.openai.com', '/v1/chat/completions', body));
      expect(JSON.parse(ex.request.body.bytes().toString()).stream_options).toEqual({ include_usage: true });
      expect(ex.facts.usageInjected).toBe(true);
      if (!(await runResponse(s.pipeline, ex, 200, SSE_H, chunks)).equals(expected)) wrong.push(name);
      runs++;
    }
    expect(wrong).toEqual([]);
    const labels = { provider: 'openai', model: 'gpt-4o-mini' };
    expect(await metric(s.registry, 'aigress_tokens_total', { ...labels, type: 'input' })).toBe(19 * runs);
    expect(await metric(s.registry, 'aigress_tokens_total', { ...labels, type: 'output' })).toBe(17 * runs);
  });

  it('leaves a client that asked for usage itself alone, usage chunk included', async () => {
    const s = setup();
    const own = { ...body, stream_options: { include_usage: true } };
    const { ex } = await runRequest(s.pipeline, exchange(s.policy, 'api.openai.com', '/v1/chat/completions', own));
    expect(JSON.parse(ex.request.body.bytes().toString())).toEqual(own);
    expect(ex.facts.usageInjected).toBeUndefined();
    const upstream = fixture('openai', 'chat-stream-include-usage.sse');
    expect((await runResponse(s.pipeline, ex, 200, SSE_H, [upstream])).equals(upstream)).toBe(true);
  });

  it('passes error responses through untouched', async () => {
    const s = setup();
    const { ex } = await runRequest(s.pipeline, exchange(s.policy, 'api.openai.com', '/v1/chat/completions', body));
    const err = Buffer.from('{"error":{"message":"Invalid model","type":"invalid_request_error","usage":null}}');
    expect((await runResponse(s.pipeline, ex, 400, { 'content-type': 'application/json' }, [err])).equals(err)).toBe(true);
  });

  it('does not touch non-streaming requests or other providers', async () => {
    const s = setup();
    const plain = await runRequest(s.pipeline, exchange(s.policy, 'api.openai.com', '/v1/chat/completions', { model: 'gpt-4o' }));
    expect(plain.ex.request.body.bytes().toString()).toBe('{"model":"gpt-4o"}');
    const azure = await runRequest(s.pipeline, exchange(s.policy, 'x.openai.azure.com', '/openai/v1/chat/completions', body));
    expect(JSON.parse(azure.ex.request.body.bytes().toString())).toEqual(body);
  });
});
