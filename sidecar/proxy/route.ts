import type { UnmatchedEgress } from '../../shared/policy/types.js';
import type { ProviderAdapter } from '../../shared/providers/types.js';
import type { PeekResult } from './peek.js';

// Where a captured connection goes, decided from its first bytes and the policy. Pure: the listener does the
// socket work. routeLabel() gives the `route` label of aigress_connections_total.

export type Route =
  /** An AI host: terminate (or, for plain HTTP, read) and run the pipeline. Upstream goes to the provider by name. */
  | { route: 'mediated'; tls: boolean; host: string; adapter: ProviderAdapter }
  /**
   * Untouched TCP, replaying the peeked bytes, to `target`: the original destination when the proxy knows it
   * (SO_ORIGINAL_DST), so a named host is never re-resolved and no port is guessed; else, by name only, the
   * name at the port it implies. `by` says whether a name (SNI, Host) was seen or only the address is known.
   */
  | { route: 'passthrough'; by: 'name' | 'address'; tls: boolean; host?: string; target: { host: string; port: number }; reason?: string }
  /** Refused by policy (`unmatchedEgress: deny`) or by the proxy's rules (CONNECT, conflicting targets). */
  | { route: 'denied'; tls: boolean; host?: string; reason: string }
  /** No name to route by and no original destination: closed, counted and logged. */
  | { route: 'unmediated'; reason: string; http?: boolean; /** For HTTP: the status to answer (default 400). */ status?: 431 };

/** The `route` label of aigress_connections_total. */
export type RouteLabel = 'mediated' | 'passthrough_name' | 'passthrough_address' | 'refused';
export const ROUTE_LABELS: readonly RouteLabel[] = ['mediated', 'passthrough_name', 'passthrough_address', 'refused'];

export function routeLabel(r: Route): RouteLabel {
  if (r.route === 'mediated') return 'mediated';
  if (r.route === 'passthrough') return r.by === 'name' ? 'passthrough_name' : 'passthrough_address';
  return 'refused';
}

/** What the first bytes were, plus the two ways peeking can end without a verdict. */
export type Peeked =
  | Exclude<PeekResult, { kind: 'more' }>
  /** The client sent nothing (a server-first protocol, or an idle client). */
  | { kind: 'silent' }
  /** The client sent too little to classify before the timeout. */
  | { kind: 'stalled' };

/** Used only without SO_ORIGINAL_DST: the port a name-only pass-through dials. */
export const ASSUMED_TLS_PORT = 443;
export const ASSUMED_HTTP_PORT = 80;

const IPV4_LITERAL = /^\d{1,3}(?:\.\d{1,3}){3}$/;

export function decideRoute(
  peeked: Peeked,
  matchHost: (host: string) => ProviderAdapter | undefined,
  unmatchedEgress: UnmatchedEgress,
  original?: { address: string; port: number },
): Route {
  const target = original ? { host: original.address, port: original.port } : undefined;
  // A connection that names nothing goes where it was going, unless the policy says unmatched egress is denied.
  const byAddress = (tls: boolean, reason: string, refusal: Route): Route => {
    if (!target) return refusal;
    if (unmatchedEgress === 'deny') return { route: 'denied', tls, reason: `${reason}; unmatchedEgress: deny` };
    return { route: 'passthrough', by: 'address', tls, target, reason };
  };
  const byName = (tls: boolean, host: string, fallbackPort: number): Route => {
    if (unmatchedEgress === 'deny') return { route: 'denied', tls, host, reason: 'unmatchedEgress: deny' };
    return { route: 'passthrough', by: 'name', tls, host, target: target ?? { host, port: fallbackPort } };
  };
  switch (peeked.kind) {
    case 'silent':
      return byAddress(false, 'client sent nothing', { route: 'unmediated', reason: 'client sent nothing' });
    case 'stalled':
      // Part of something (perhaps a ClientHello for an AI host) and then nothing: never forwarded blind.
      return { route: 'unmediated', reason: 'client sent too little to route' };
    case 'unknown':
      if (peeked.headTooLarge) return { route: 'unmediated', reason: peeked.reason, http: true, status: 431 };
      // A malformed HTTP head (obs-fold, a bad request line) is answered 400, as the HTTP server answers it on TLS.
      return byAddress(false, peeked.reason, { route: 'unmediated', reason: peeked.reason, ...(peeked.malformedHttp && { http: true }) });
    case 'tls': {
      if (peeked.sni === undefined) return byAddress(true, 'TLS ClientHello without SNI', { route: 'unmediated', reason: 'TLS ClientHello without SNI' });
      // RFC 6066 §3 forbids IP literals in SNI; a client that connects by address sends none. One that sends an
      // address names no host the proxy could check, so it is treated as nameless: passed through to its original
      // address when that is known, else closed, never passed through by name.
      if (peeked.sni.startsWith('[') || IPV4_LITERAL.test(peeked.sni)) return byAddress(true, 'SNI is an IP literal', { route: 'unmediated', reason: 'SNI is an IP literal' });
      const adapter = matchHost(peeked.sni);
      if (adapter) return { route: 'mediated', tls: true, host: peeked.sni, adapter };
      return byName(true, peeked.sni, ASSUMED_TLS_PORT);
    }
    case 'http': {
      const req = peeked.request;
      if (req.host === undefined) {
        return byAddress(false, 'HTTP request without Host', { route: 'unmediated', reason: 'HTTP request without Host', http: true });
      }
      if (req.method === 'CONNECT') return { route: 'denied', tls: false, host: req.host, reason: 'CONNECT is not allowed' };
      if (req.conflictingTarget !== undefined) {
        return { route: 'denied', tls: false, host: req.host, reason: 'request target names another host than Host' };
      }
      const adapter = matchHost(req.host);
      if (adapter) return { route: 'mediated', tls: false, host: req.host, adapter };
      return byName(false, req.host, req.port ?? ASSUMED_HTTP_PORT);
    }
  }
}
