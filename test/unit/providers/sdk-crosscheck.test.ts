// The fixtures are only as good as their wire format. Here the providers' official SDKs read them from a
// loopback server, and what the SDKs report as usage must match what the adapters read from the same bytes.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createH2Server, type Http2Server, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import type { AddressInfo } from 'node:net';
import Anthropic from '@anthropic-ai/sdk';
import { BedrockRuntimeClient, ConverseStreamCommand, InvokeModelWithResponseStreamCommand } from '@aws-sdk/client-bedrock-runtime';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { anthropic } from '../../../shared/providers/anthropic.js';
import { bedrock } from '../../../shared/providers/bedrock.js';
import { openai } from '../../../shared/providers/openai.js';
import { EVENT_STREAM, fixture, readUsage, request, SSE } from './support.js';

const ROUTES: Record<string, [string, string, string]> = {
  '/v1/chat/completions': ['openai', 'chat-stream-include-usage.sse', SSE['content-type']],
  '/v1/responses': ['openai', 'responses-stream.sse', SSE['content-type']],
  '/v1/messages': ['anthropic', 'messages-stream-cache.sse', SSE['content-type']],
  '/model/eu.anthropic.claude-sonnet-4-20250514-v1%3A0/converse-stream': ['bedrock', 'converse-stream.eventstream', EVENT_STREAM['content-type']],
  '/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/invoke-with-response-stream': ['bedrock', 'invoke-stream.eventstream', EVENT_STREAM['content-type']],
};

let server: Server;
let h2: Http2Server;
let base = '';
let h2base = '';
const clients: BedrockRuntimeClient[] = [];

function serve(req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse): void {
  req.resume();
  const route = ROUTES[(req.url ?? '').split('?')[0]!];
  if (!route) {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { 'content-type': route[2] });
  res.end(fixture(route[0], route[1]));
}

beforeAll(async () => {
  server = createServer(serve);
  // The Bedrock runtime client speaks HTTP/2 (cleartext here, as it would over TLS to AWS).
  h2 = createH2Server(serve);
  await Promise.all([
    new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve)),
    new Promise<void>((resolve) => h2.listen(0, '127.0.0.1', resolve)),
  ]);
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  h2base = `http://127.0.0.1:${(h2.address() as AddressInfo).port}`;
});
afterAll(async () => {
  for (const c of clients) c.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await new Promise<void>((resolve) => h2.close(() => resolve()));
});

describe('official SDKs read the stream fixtures and agree with the adapters', () => {
  it('openai SDK: chat stream with include_usage', async () => {
    const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'test', maxRetries: 0 });
    const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], stream: true, stream_options: { include_usage: true } });
    let sdk: OpenAI.CompletionUsage | null | undefined;
    let text = '';
    for await (const c of stream) {
      if (c.usage) sdk = c.usage;
      text += c.choices[0]?.delta.content ?? '';
    }
    expect(text).toBe('Grüße aus Köln 👋! Wie kann ich helfen? Frag nach "usage":null, wenn du willst.');
    const ours = readUsage(openai, openai.describe(request('api.openai.com', '/v1/chat/completions', { model: 'gpt-4o-mini', stream: true }), {}), SSE, [
      fixture('openai', 'chat-stream-include-usage.sse'),
    ]).usage;
    expect(ours).toEqual({
      input: sdk!.prompt_tokens,
      output: sdk!.completion_tokens,
      cachedInput: sdk!.prompt_tokens_details!.cached_tokens,
      reasoning: sdk!.completion_tokens_details!.reasoning_tokens,
    });
  });

  it('openai SDK: Responses stream', async () => {
    const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'test', maxRetries: 0 });
    const stream = await client.responses.create({ model: 'o4-mini', input: 'count', stream: true });
    let usage: OpenAI.Responses.ResponseUsage | undefined;
    for await (const ev of stream) if (ev.type === 'response.completed') usage = ev.response.usage;
    const ours = readUsage(openai, openai.describe(request('api.openai.com', '/v1/responses', { model: 'o4-mini', stream: true }), {}), SSE, [
      fixture('openai', 'responses-stream.sse'),
    ]).usage;
    expect(ours).toEqual({
      input: usage!.input_tokens,
      output: usage!.output_tokens,
      cachedInput: usage!.input_tokens_details.cached_tokens,
      reasoning: usage!.output_tokens_details.reasoning_tokens,
    });
  });

  it('anthropic SDK: message stream with a cache write', async () => {
    const client = new Anthropic({ baseURL: base, apiKey: 'test', maxRetries: 0 });
    const final = await client.messages
      .stream({ model: 'claude-sonnet-4-5', max_tokens: 100, messages: [{ role: 'user', content: 'weather?' }] })
      .finalMessage();
    const u = final.usage;
    const ours = readUsage(anthropic, anthropic.describe(request('api.anthropic.com', '/v1/messages', { model: 'x', stream: true }), {}), SSE, [
      fixture('anthropic', 'messages-stream-cache.sse'),
    ]).usage;
    expect(ours).toEqual({
      input: u.input_tokens + (u.cache_read_input_tokens ?? 0) + (u.cache_creation_input_tokens ?? 0),
      output: u.output_tokens,
      cachedInput: u.cache_read_input_tokens,
      cacheWriteInput: u.cache_creation_input_tokens,
    });
    expect(final.content[0]).toMatchObject({ type: 'tool_use', input: { location: 'Berlin', unit: 'celsius' } });
  });

  const bedrockClient = () => {
    const c = new BedrockRuntimeClient({ region: 'eu-central-1', endpoint: h2base, credentials: { accessKeyId: 'AKIDTEST', secretAccessKey: 'test' }, maxAttempts: 1 });
    clients.push(c);
    return c;
  };

  it('AWS SDK: ConverseStream event stream', async () => {
    const out = await bedrockClient().send(
      new ConverseStreamCommand({ modelId: 'eu.anthropic.claude-sonnet-4-20250514-v1:0', messages: [{ role: 'user', content: [{ text: 'hi' }] }] }),
    );
    let sdk: { inputTokens?: number; outputTokens?: number; cacheReadInputTokens?: number; cacheWriteInputTokens?: number } | undefined;
    let text = '';
    for await (const ev of out.stream!) {
      if (ev.metadata) sdk = ev.metadata.usage;
      text += ev.contentBlockDelta?.delta?.text ?? '';
    }
    expect(text).toBe('Guten Morgen – wie geht’s?');
    const desc = bedrock.describe(request('bedrock-runtime.eu-central-1.amazonaws.com', '/model/eu.anthropic.claude-sonnet-4-20250514-v1%3A0/converse-stream'), {});
    expect(readUsage(bedrock, desc, EVENT_STREAM, [fixture('bedrock', 'converse-stream.eventstream')]).usage).toEqual({
      input: sdk!.inputTokens! + sdk!.cacheReadInputTokens! + sdk!.cacheWriteInputTokens!,
      output: sdk!.outputTokens,
      cachedInput: sdk!.cacheReadInputTokens,
      cacheWriteInput: sdk!.cacheWriteInputTokens,
    });
  });

  it('AWS SDK: InvokeModelWithResponseStream chunks', async () => {
    const out = await bedrockClient().send(
      new InvokeModelWithResponseStreamCommand({ modelId: 'anthropic.claude-3-5-haiku-20241022-v1:0', body: JSON.stringify({ messages: [] }) }),
    );
    let metrics: { inputTokenCount: number; outputTokenCount: number } | undefined;
    for await (const ev of out.body!) {
      const inner = JSON.parse(Buffer.from(ev.chunk!.bytes!).toString('utf8')) as Record<string, unknown>;
      if (inner['amazon-bedrock-invocationMetrics']) metrics = inner['amazon-bedrock-invocationMetrics'] as typeof metrics;
    }
    const desc = bedrock.describe(request('bedrock-runtime.eu-central-1.amazonaws.com', '/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/invoke-with-response-stream'), {});
    expect(readUsage(bedrock, desc, EVENT_STREAM, [fixture('bedrock', 'invoke-stream.eventstream')]).usage).toEqual({
      input: metrics!.inputTokenCount,
      output: metrics!.outputTokenCount,
    });
  });
});
