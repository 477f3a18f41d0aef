import { describe, expect, it } from 'vitest';
import { gemini } from '../../../shared/providers/gemini.js';
import { fixture, JSON_TYPE, readUsage, request, SSE, stableUsage } from './support.js';

const HOST = 'generativelanguage.googleapis.com';
const d = (path: string, body: unknown = {}) => gemini.describe(request(HOST, path, body), {});

describe('gemini: describe', () => {
  it('takes model and method from the path; the reach is global', () => {
    expect(d('/v1beta/models/gemini-2.5-flash:generateContent')).toMatchObject({
      operation: 'generate_content',
      model: 'gemini-2.5-flash',
      stream: false,
      region: 'global',
      reach: ['global'],
    });
    expect(d('/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse')).toMatchObject({ operation: 'generate_content', stream: true, model: 'gemini-2.5-pro' });
    expect(d('/v1beta/models/gemini-2.0-flash:countTokens')).toMatchObject({ operation: 'count_tokens' });
    expect(d('/v1beta/models/gemini-embedding-001:embedContent')).toMatchObject({ operation: 'embeddings', model: 'gemini-embedding-001' });
    expect(d('/v1beta/tunedModels/my-model-abc:generateContent')).toMatchObject({ model: 'tunedModels/my-model-abc' });
    expect(d('/v1beta/files', '')).toMatchObject({ operation: 'unknown' });
  });
  it('reads the OpenAI-compatible endpoint like OpenAI', () => {
    expect(d('/v1beta/openai/chat/completions', { model: 'gemini-2.0-flash', stream: true })).toMatchObject({
      operation: 'chat',
      model: 'gemini-2.0-flash',
      stream: true,
      api: 'openai',
    });
  });
});

describe('gemini: usage', () => {
  const gen = d('/v1beta/models/gemini-2.5-flash:generateContent');
  it('JSON: thoughts are output and reasoning; candidates do not include them', () => {
    expect(stableUsage(gemini, gen, JSON_TYPE, fixture('gemini', 'generate.json'))).toEqual({
      usage: { input: 12, output: 318 + 763, reasoning: 763 },
      responseModel: 'gemini-2.5-flash',
    });
  });
  it('JSON with cached content: the prompt count already includes it', () => {
    expect(readUsage(gemini, gen, JSON_TYPE, [fixture('gemini', 'generate-cached.json')]).usage).toEqual({
      input: 25613,
      output: 150,
      cachedInput: 24576,
    });
  });
  it('SSE stream (CRLF framed): the last chunk’s running totals', () => {
    const s = d('/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse');
    expect(stableUsage(gemini, s, SSE, fixture('gemini', 'stream.sse'))).toEqual({
      usage: { input: 9, output: 41 + 412, reasoning: 412 },
      responseModel: 'gemini-2.5-flash',
    });
  });
  it('stream without alt=sse: a JSON array, empty usageMetadata in early chunks', () => {
    const s = d('/v1beta/models/gemini-2.0-flash-001:streamGenerateContent');
    expect(stableUsage(gemini, s, JSON_TYPE, fixture('gemini', 'stream-array.json'))).toEqual({
      usage: { input: 6, output: 17 },
      responseModel: 'gemini-2.0-flash-001',
    });
  });
  it('an embedding response has no usage: absent, not zero', () => {
    const e = d('/v1beta/models/gemini-embedding-001:embedContent');
    expect(readUsage(gemini, e, JSON_TYPE, [fixture('gemini', 'embed.json')])).toEqual({});
  });
});
