import { openAiStyleError } from './errors.js';
import type { ProviderAdapter } from './types.js';

export const openai: ProviderAdapter = {
  id: 'openai',
  matchHost: (host) => host === 'api.openai.com' || host === 'eu.api.openai.com',
  errorResponse: openAiStyleError,
};
