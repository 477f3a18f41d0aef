import { describe, expect, it } from 'vitest';
import { vertexAi } from '../../../shared/providers/vertex-ai.js';
import { fixture, JSON_TYPE, request, SSE, stableUsage } from './support.js';

const d = (host: string, path: string, body: unknown = {}) => vertexAi.describe(request(host, path, body), {});
const P = '/v1/projects/acme-ai/locations';

describe('vertex-ai: describe', () => {
  it('Gemini on a regional endpoint: region from host and path', () => {
    expect(d('europe-west4-aiplatform.googleapis.com', `${P}/europe-west4/publishers/google/models/gemini-2.0-flash-001:streamGenerateContent?alt=sse`)).toMatchObject({
      operation: 'generate_content',
      stream: true,
      model: 'gemini-2.0-flash-001',
      region: 'europe-west4',
      reach: ['europe-west4'],
    });
  });
  it('the global endpoint with locations/global reaches anywhere; with a regional location, that region', () => {
    expect(d('aiplatform.googleapis.com', `${P}/global/publishers/google/models/gemini-2.5-pro:generateContent`)).toMatchObject({ region: 'global', reach: ['global'] });
    expect(d('aiplatform.googleapis.com', `${P}/us-central1/publishers/google/models/gemini-2.5-pro:generateContent`)).toMatchObject({ reach: ['us-central1'] });
    expect(d('aiplatform.googleapis.com', '/v1/publishers/google/models/gemini-2.5-flash:generateContent')).toMatchObject({ reach: ['global'] });
  });
  it('a multi-region location is its group; a host and path that disagree put both in the reach', () => {
    expect(d('aiplatform.googleapis.com', `${P}/eu/publishers/google/models/gemini-2.5-flash:generateContent`)).toMatchObject({ reach: ['eu'] });
    expect(d('us-east5-aiplatform.googleapis.com', `${P}/europe-west1/publishers/anthropic/models/claude-sonnet-4@20250514:rawPredict`).reach).toEqual([
      'europe-west1',
      'us-east5',
    ]);
  });
  it('Claude (rawPredict / streamRawPredict) speaks Anthropic; count-tokens is a pseudo-model', () => {
    expect(d('us-east5-aiplatform.googleapis.com', `${P}/us-east5/publishers/anthropic/models/claude-sonnet-4@20250514:streamRawPredict`)).toMatchObject({
      operation: 'chat',
      stream: true,
      model: 'claude-sonnet-4@20250514',
      api: 'anthropic',
    });
    expect(
      d('us-east5-aiplatform.googleapis.com', `${P}/us-east5/publishers/anthropic/models/count-tokens:rawPredict`, { model: 'claude-3-5-haiku@20241022', messages: [] }),
    ).toMatchObject({ operation: 'count_tokens', model: 'claude-3-5-haiku@20241022' });
  });
  it('the OpenAI-compatible endpoint, partner models and unknown paths', () => {
    expect(d('us-central1-aiplatform.googleapis.com', `${P}/us-central1/endpoints/openapi/chat/completions`, { model: 'google/gemini-2.0-flash-001', stream: true })).toMatchObject({
      operation: 'chat',
      model: 'google/gemini-2.0-flash-001',
      stream: true,
      api: 'openai',
    });
    expect(d('us-central1-aiplatform.googleapis.com', `${P}/us-central1/publishers/mistralai/models/mistral-small-2503:rawPredict`)).toMatchObject({
      operation: 'chat',
      model: 'mistralai/mistral-small-2503',
    });
    expect(d('us-central1-aiplatform.googleapis.com', `${P}/us-central1/endpoints/1234567890:generateContent`)).toMatchObject({ model: 'endpoints/1234567890' });
    expect(d('us-central1-aiplatform.googleapis.com', `${P}/us-central1/datasets`, '')).toMatchObject({ operation: 'unknown', reach: ['us-central1'] });
  });
});

describe('vertex-ai: usage', () => {
  it('Gemini SSE stream with cached content', () => {
    const s = d('europe-west4-aiplatform.googleapis.com', `${P}/europe-west4/publishers/google/models/gemini-2.0-flash-001:streamGenerateContent?alt=sse`);
    expect(stableUsage(vertexAi, s, SSE, fixture('vertex-ai', 'gemini-stream.sse'))).toEqual({
      usage: { input: 2058, output: 8, cachedInput: 2040 },
      responseModel: 'gemini-2.0-flash-001',
    });
  });
  it('Claude rawPredict JSON', () => {
    const c = d('us-east5-aiplatform.googleapis.com', `${P}/us-east5/publishers/anthropic/models/claude-3-5-sonnet-v2@20241022:rawPredict`);
    expect(stableUsage(vertexAi, c, JSON_TYPE, fixture('vertex-ai', 'anthropic-raw.json'))).toEqual({
      usage: { input: 18, output: 32, cachedInput: 0, cacheWriteInput: 0 },
      responseModel: 'claude-3-5-sonnet-v2-20241022',
    });
  });
  it('Claude streamRawPredict SSE with a cache read', () => {
    const c = d('us-east5-aiplatform.googleapis.com', `${P}/us-east5/publishers/anthropic/models/claude-sonnet-4@20250514:streamRawPredict`);
    expect(stableUsage(vertexAi, c, SSE, fixture('vertex-ai', 'anthropic-stream.sse'))).toEqual({
      usage: { input: 11 + 4096, output: 6, cachedInput: 4096, cacheWriteInput: 0 },
      responseModel: 'claude-sonnet-4-20250514',
    });
  });
});
