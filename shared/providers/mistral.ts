import { jsonError } from './errors.js';
import { openAiCodec } from './openai-content.js';
import { describeOpenAiBody, openAiUsageHandlers } from './openai.js';
import { bodyJson, splitPath } from './request.js';
import type { Operation, ProviderAdapter } from './types.js';

// Mistral AI's La Plateforme (api.mistral.ai): OpenAI-shaped bodies, usage in JSON bodies and in the last chunk
// of every stream (no opt-in needed). Region: Mistral hosts La Plateforme in the EU, so the host counts as eu.

const OPERATIONS: Record<string, Operation> = {
  '/v1/chat/completions': 'chat',
  '/v1/agents/completions': 'chat',
  '/v1/fim/completions': 'text_completion',
  '/v1/embeddings': 'embeddings',
};

export const mistral: ProviderAdapter = {
  id: 'mistral',
  otelName: 'mistral_ai',
  matchHost: (host) => host === 'api.mistral.ai',
  errorResponse: (kind, status, message) =>
    jsonError(status, kind, { object: 'error', message, type: kind === 'budget' ? 'rate_limited' : 'invalid_request_error', param: null, code: status }),
  describe(req) {
    const { pathname } = splitPath(req.path);
    return {
      ...describeOpenAiBody(bodyJson(req), OPERATIONS[pathname.replace(/\/$/, '')] ?? 'unknown'),
      region: 'eu',
      reach: ['eu'],
      regionNote: 'Mistral La Plateforme is hosted in the EU',
    };
  },
  usageHandlers: () => openAiUsageHandlers(),
  codec: (d) => openAiCodec(d.operation),
};
