import type { ProviderId } from '../policy/types.js';

export type { ProviderId };

/** Why the proxy itself answers instead of the provider; maps to the provider's own error vocabulary. */
export type DenyKind =
  | 'policy' // 403: model or provider not allowed, filter blocked
  | 'region' // 451: region not allowed
  | 'budget' // 429: token budget spent
  | 'too_large' // 413: request body over the proxy's limit
  | 'bad_gateway' // 502: upstream unreachable, reset, TLS failure
  | 'timeout' // 504: upstream did not answer in time
  | 'misdirected' // 421: Host header disagrees with SNI
  | 'unavailable'; // 503: the proxy cannot enforce policy right now (fail closed)

export interface ErrorResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * One AI provider. Each lives in its own file next to this one; adding a provider touches that file, the
 * registry list in index.ts and a fixture folder, nothing else.
 *
 * The data-plane issue needs only host matching and the error shape; the provider-awareness issue adds
 * operations, model and region extraction and usage parsing to this interface.
 */
export interface ProviderAdapter {
  readonly id: ProviderId;
  /** True when `host` (lower-case, no port) is one of this provider's API hosts. */
  matchHost(host: string): boolean;
  /** A response in the provider's own error JSON shape, so SDKs surface a readable message. */
  errorResponse(kind: DenyKind, status: number, message: string): ErrorResponse;
}
