import { googleStyleError } from './errors.js';
import type { ProviderAdapter } from './types.js';

export const gemini: ProviderAdapter = {
  id: 'gemini',
  matchHost: (host) => host === 'generativelanguage.googleapis.com',
  errorResponse: googleStyleError,
};
