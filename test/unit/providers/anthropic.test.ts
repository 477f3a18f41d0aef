import { describe, expect, it } from 'vitest';
import { anthropic } from '../../../shared/providers/anthropic.js';
import { fixture, JSON_TYPE, readUsage, request, SSE, stableUsage } from './support.js';

const API = 'api.anthropic.com';
const d = (path: string, body: unknown) => anthropic.describe(request(API, path, body), {});

describe('anthropic: describe', () => {
  it('tells operation, model and stream; the region is the US', () => {
    expect(d('/v1/messages', { model: 'claude-sonnet-4-5', max_tokens: 10, messages: [], stream: true })).toMatchObject({
      operation: 'chat',
      model: 'claude-sonnet-4-5',
      stream: true,
      region: 'us',
      reach: ['us'],
    });
    expect(d('/v1/messages/count_tokens', { model: 'claude-opus-4-1', messages: [] })).toMatchObject({ operation: 'count_tokens', model: 'claude-opus-4-1' });
    expect(d('/v1/messages/batches', { requests: [] })).toMatchObject({ operation: 'unknown', stream: false });
  });
});

describe('anthropic: usage', () => {
  const chat = d('/v1/messages', { model: 'claude-sonnet-4-5' });
  it('JSON message: input includes cache reads and writes', () => {
    expect(stableUsage(anthropic, chat, JSON_TYPE, fixture('anthropic', 'messages.json'))).toEqual({
      usage: { input: 2095 + 1812, output: 503, cachedInput: 1812, cacheWriteInput: 0 },
      responseModel: 'claude-sonnet-4-5-20250929',
    });
  });
  it('JSON message with extended thinking: thinking tokens are reasoning', () => {
    expect(readUsage(anthropic, chat, JSON_TYPE, [fixture('anthropic', 'messages-thinking.json')]).usage).toEqual({
      input: 63,
      output: 1417,
      cachedInput: 0,
      cacheWriteInput: 0,
      reasoning: 1138,
    });
  });
  it('stream: input from message_start, output from the last message_delta', () => {
    expect(stableUsage(anthropic, chat, SSE, fixture('anthropic', 'messages-stream.sse'))).toEqual({
      usage: { input: 25, output: 15 },
      responseModel: 'claude-3-5-haiku-20241022',
    });
  });
  it('stream with a cache write and cumulative counts in message_delta', () => {
    expect(stableUsage(anthropic, chat, SSE, fixture('anthropic', 'messages-stream-cache.sse')).usage).toEqual({
      input: 472 + 1536,
      output: 89,
      cachedInput: 0,
      cacheWriteInput: 1536,
    });
  });
  it('a stream broken after message_start reports the input and the output counted so far', () => {
    const body = fixture('anthropic', 'messages-stream.sse');
    const cut = body.subarray(0, body.indexOf('event: content_block_start'));
    expect(readUsage(anthropic, chat, SSE, [cut]).usage).toEqual({ input: 25, output: 1 });
  });
});
