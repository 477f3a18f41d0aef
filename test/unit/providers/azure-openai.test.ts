import { describe, expect, it } from 'vitest';
import { azureOpenai } from '../../../shared/providers/azure-openai.js';
import { fixture, JSON_TYPE, request, SSE, stableUsage } from './support.js';

const HOST = 'contoso-eu.openai.azure.com';
const resources = { azureResources: { 'contoso-eu': 'swedencentral' } };

describe('azure-openai: describe', () => {
  it('takes the model from a deployment path and the region from the resource map', () => {
    const r = request(HOST, '/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21', { messages: [], stream: true });
    expect(azureOpenai.describe(r, resources)).toMatchObject({
      operation: 'chat',
      model: 'gpt4o-prod',
      stream: true,
      region: 'swedencentral',
      reach: ['swedencentral'],
    });
  });
  it('reads the v1 API and the Responses API, model from the body', () => {
    expect(azureOpenai.describe(request(HOST, '/openai/v1/chat/completions', { model: 'gpt-4.1-mini' }), resources)).toMatchObject({
      operation: 'chat',
      model: 'gpt-4.1-mini',
    });
    expect(azureOpenai.describe(request(HOST, '/openai/responses?api-version=2025-04-01-preview', { model: 'o4-mini' }), resources)).toMatchObject({
      operation: 'responses',
      model: 'o4-mini',
    });
    expect(azureOpenai.describe(request(HOST, '/openai/deployments/emb/embeddings?api-version=2024-10-21', { input: 'x' }), resources)).toMatchObject({
      operation: 'embeddings',
      model: 'emb',
    });
  });
  it('leaves the region unknown for a resource the policy does not map, and says so', () => {
    const desc = azureOpenai.describe(request('other.openai.azure.com', '/openai/v1/chat/completions', { model: 'gpt-4o' }), resources);
    expect(desc.region).toBeUndefined();
    expect(desc.reach).toBeUndefined();
    expect(desc.regionNote).toContain('"other" is not listed in spec.regions.azureResources');
  });
  it('keeps unknown paths as unknown', () => {
    expect(azureOpenai.describe(request(HOST, '/openai/files?api-version=2024-10-21', '', 'GET'), resources)).toMatchObject({ operation: 'unknown' });
  });
});

describe('azure-openai: usage', () => {
  const desc = azureOpenai.describe(request(HOST, '/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21', {}), resources);
  it('JSON with content-filter results; the response names the real model', () => {
    expect(stableUsage(azureOpenai, desc, JSON_TYPE, fixture('azure-openai', 'chat.json'))).toEqual({
      usage: { input: 33, output: 16, cachedInput: 0, reasoning: 0 },
      responseModel: 'gpt-4o-2024-11-20',
    });
  });
  it('stream whose client asked for usage, with Azure’s prompt-filter chunk first', () => {
    expect(stableUsage(azureOpenai, desc, SSE, fixture('azure-openai', 'chat-stream.sse'))).toEqual({
      usage: { input: 14, output: 3, cachedInput: 0, reasoning: 0 },
      responseModel: 'gpt-4o-2024-11-20',
    });
  });
  it('asks nothing of Azure streams (older api-versions reject stream_options)', () => {
    expect(azureOpenai.streamUsage).toBeUndefined();
  });
});
