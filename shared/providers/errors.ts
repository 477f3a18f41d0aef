import type { DenyKind, ErrorResponse } from './types.js';

const JSON_HEADERS = { 'content-type': 'application/json' };

/** Every proxy-made error says it came from aigress, so nobody debugs the provider for it. */
export const AIGRESS_ERROR_HEADER = 'x-aigress-denied';

export function jsonError(status: number, kind: DenyKind, body: unknown, extra: Record<string, string> = {}): ErrorResponse {
  return { status, headers: { ...JSON_HEADERS, [AIGRESS_ERROR_HEADER]: kind, ...extra }, body: JSON.stringify(body) };
}

/** OpenAI's `{ error: { message, type, param, code } }`, shared by the OpenAI-compatible APIs. */
export function openAiStyleError(kind: DenyKind, status: number, message: string): ErrorResponse {
  const type = {
    policy: 'permission_error',
    region: 'permission_error',
    budget: 'rate_limit_exceeded',
    too_large: 'invalid_request_error',
    bad_gateway: 'server_error',
    timeout: 'server_error',
    misdirected: 'invalid_request_error',
    bad_request: 'invalid_request_error',
    unavailable: 'server_error',
  }[kind];
  return jsonError(status, kind, { error: { message, type, param: null, code: `aigress_${kind}` } });
}

/** Google's `{ error: { code, message, status } }` (Gemini and Vertex AI). */
export function googleStyleError(kind: DenyKind, status: number, message: string): ErrorResponse {
  const googleStatus = {
    policy: 'PERMISSION_DENIED',
    region: 'PERMISSION_DENIED',
    budget: 'RESOURCE_EXHAUSTED',
    too_large: 'INVALID_ARGUMENT',
    bad_gateway: 'UNAVAILABLE',
    timeout: 'DEADLINE_EXCEEDED',
    misdirected: 'INVALID_ARGUMENT',
    bad_request: 'INVALID_ARGUMENT',
    unavailable: 'UNAVAILABLE',
  }[kind];
  return jsonError(status, kind, { error: { code: status, message, status: googleStatus } });
}
