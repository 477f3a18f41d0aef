import { jsonError } from './errors.js';
import type { ProviderAdapter } from './types.js';

const HOST = /^bedrock-runtime(?:-fips)?\.[a-z0-9-]+\.amazonaws\.com$/;

export const bedrock: ProviderAdapter = {
  id: 'bedrock',
  matchHost: (host) => HOST.test(host),
  // AWS SDKs read the error name from x-amzn-ErrorType and the text from `message`.
  errorResponse: (kind, status, message) => {
    const type = {
      policy: 'AccessDeniedException',
      region: 'AccessDeniedException',
      budget: 'ThrottlingException',
      too_large: 'ValidationException',
      bad_gateway: 'ServiceUnavailableException',
      timeout: 'ModelTimeoutException',
      misdirected: 'ValidationException',
      unavailable: 'ServiceUnavailableException',
    }[kind];
    return jsonError(status, kind, { message }, { 'x-amzn-errortype': type });
  },
};
