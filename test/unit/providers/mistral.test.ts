import { describe, expect, it } from 'vitest';
import { mistral } from '../../../shared/providers/mistral.js';
import { fixture, JSON_TYPE, request, SSE, stableUsage } from './support.js';

const d = (path: string, body: unknown) => mistral.describe(request('api.mistral.ai', path, body), {});

describe('mistral', () => {
  it('describes chat, FIM and embeddings; the region is the EU', () => {
    expect(d('/v1/chat/completions', { model: 'mistral-large-latest', stream: true })).toMatchObject({
      operation: 'chat',
      model: 'mistral-large-latest',
      stream: true,
      region: 'eu',
      reach: ['eu'],
    });
    expect(d('/v1/fim/completions', { model: 'codestral-latest' })).toMatchObject({ operation: 'text_completion' });
    expect(d('/v1/embeddings', { model: 'mistral-embed' })).toMatchObject({ operation: 'embeddings' });
    expect(d('/v1/ocr', { model: 'mistral-ocr-latest' })).toMatchObject({ operation: 'unknown', model: 'mistral-ocr-latest' });
  });

  const chat = d('/v1/chat/completions', { model: 'mistral-large-latest' });
  it('JSON chat usage', () => {
    expect(stableUsage(mistral, chat, JSON_TYPE, fixture('mistral', 'chat.json'))).toEqual({
      usage: { input: 16, output: 34 },
      responseModel: 'mistral-large-latest',
    });
  });
  it('stream usage comes in the last chunk without opting in', () => {
    expect(stableUsage(mistral, chat, SSE, fixture('mistral', 'chat-stream.sse'))).toEqual({
      usage: { input: 10, output: 5 },
      responseModel: 'mistral-small-latest',
    });
  });
  it('embeddings usage', () => {
    expect(stableUsage(mistral, d('/v1/embeddings', {}), JSON_TYPE, fixture('mistral', 'embeddings.json')).usage).toEqual({ input: 15, output: 0 });
  });
});
