import { googleStyleError } from './errors.js';
import type { ProviderAdapter } from './types.js';

const HOST = /^(?:[a-z0-9-]+-)?aiplatform\.googleapis\.com$/;

export const vertexAi: ProviderAdapter = {
  id: 'vertex-ai',
  matchHost: (host) => HOST.test(host),
  errorResponse: googleStyleError,
};
