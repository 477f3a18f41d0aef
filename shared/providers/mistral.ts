import { jsonError } from './errors.js';
import type { ProviderAdapter } from './types.js';

export const mistral: ProviderAdapter = {
  id: 'mistral',
  matchHost: (host) => host === 'api.mistral.ai',
  errorResponse: (kind, status, message) =>
    jsonError(status, kind, { object: 'error', message, type: kind === 'budget' ? 'rate_limited' : 'invalid_request_error', param: null, code: status }),
};
