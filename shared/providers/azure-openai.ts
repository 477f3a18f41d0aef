import { openAiStyleError } from './errors.js';
import type { ProviderAdapter } from './types.js';

const HOST = /^[a-z0-9][a-z0-9-]{0,62}\.openai\.azure\.com$/;

export const azureOpenai: ProviderAdapter = {
  id: 'azure-openai',
  matchHost: (host) => HOST.test(host),
  errorResponse: openAiStyleError,
};
