import type { UnmatchedEgress } from '../../shared/policy/types.js';
import type { ProviderAdapter } from '../../shared/providers/types.js';
import type { PeekResult } from './peek.js';

// Where a captured connection goes, decided from its first bytes and the policy. Pure: the listener does the
// socket work. The names are the `route` label of aigress_connections_total.

export type Route =
  /** An AI host: terminate (or, for plain HTTP, read) and run the pipeline. */
  | { route: 'mediated'; tls: boolean; host: string; adapter: ProviderAdapter }
  /** Any other host: untouched TCP to host:port, replaying the peeked bytes. */
  | { route: 'passthrough'; tls: boolean; host: string; port: number }
  /** Refused by policy (`unmatchedEgress: deny`) or by the proxy's rules (CONNECT, conflicting targets). */
  | { route: 'denied'; tls: boolean; host?: string; reason: string }
  /** No name to route by: closed, counted and logged. */
  | { route: 'unmediated'; reason: string; http?: boolean; /** For HTTP: the status to answer (default 400). */ status?: 431 };

/** HTTPS port assumed for pass-through TLS: without SO_ORIGINAL_DST the dialed port is unknown. */
export const ASSUMED_TLS_PORT = 443;
export const ASSUMED_HTTP_PORT = 80;

export function decideRoute(
  peeked: Exclude<PeekResult, { kind: 'more' }>,
  matchHost: (host: string) => ProviderAdapter | undefined,
  unmatchedEgress: UnmatchedEgress,
): Route {
  switch (peeked.kind) {
    case 'unknown':
      return peeked.headTooLarge ? { route: 'unmediated', reason: peeked.reason, http: true, status: 431 } : { route: 'unmediated', reason: peeked.reason };
    case 'tls': {
      if (peeked.sni === undefined) return { route: 'unmediated', reason: 'TLS ClientHello without SNI' };
      if (peeked.sni.startsWith('[')) return { route: 'unmediated', reason: 'SNI is an IP literal' };
      const adapter = matchHost(peeked.sni);
      if (adapter) return { route: 'mediated', tls: true, host: peeked.sni, adapter };
      if (unmatchedEgress === 'deny') return { route: 'denied', tls: true, host: peeked.sni, reason: 'unmatchedEgress: deny' };
      return { route: 'passthrough', tls: true, host: peeked.sni, port: ASSUMED_TLS_PORT };
    }
    case 'http': {
      const req = peeked.request;
      if (req.host === undefined) return { route: 'unmediated', reason: 'HTTP request without Host', http: true };
      if (req.method === 'CONNECT') return { route: 'denied', tls: false, host: req.host, reason: 'CONNECT is not allowed' };
      if (req.conflictingTarget !== undefined) {
        return { route: 'denied', tls: false, host: req.host, reason: 'request target names another host than Host' };
      }
      const adapter = matchHost(req.host);
      if (adapter) return { route: 'mediated', tls: false, host: req.host, adapter };
      if (unmatchedEgress === 'deny') return { route: 'denied', tls: false, host: req.host, reason: 'unmatchedEgress: deny' };
      return { route: 'passthrough', tls: false, host: req.host, port: req.port ?? ASSUMED_HTTP_PORT };
    }
  }
}
