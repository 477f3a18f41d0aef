import { jsonError } from './errors.js';
import type { ProviderAdapter } from './types.js';

export const anthropic: ProviderAdapter = {
  id: 'anthropic',
  matchHost: (host) => host === 'api.anthropic.com',
  errorResponse: (kind, status, message) => {
    const type = {
      policy: 'permission_error',
      region: 'permission_error',
      budget: 'rate_limit_error',
      too_large: 'request_too_large',
      bad_gateway: 'api_error',
      timeout: 'api_error',
      misdirected: 'invalid_request_error',
      unavailable: 'overloaded_error',
    }[kind];
    return jsonError(status, kind, { type: 'error', error: { type, message } });
  },
};
