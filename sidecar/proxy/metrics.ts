import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { ADDRESS_CHECKS } from './passthrough-check.js';
import { ROUTE_LABELS } from './route.js';

// The proxy's Prometheus metrics, served on the admin port. One Registry per proxy instance (tests run several
// in one process); the pipeline registers its processors' metrics in the same registry.

/** `would-deny`: audit mode let through a request policy would have denied. */
export type Decision = 'allow' | 'deny' | 'would-deny' | 'error';

export interface ProxyMetrics {
  readonly registry: Registry;
  readonly connections: Counter<'route'>;
  readonly requests: Counter<'provider' | 'operation' | 'model' | 'decision' | 'code'>;
  readonly upstreamErrors: Counter<'provider' | 'reason'>;
  readonly bodyTooLarge: Counter<string>;
  readonly clientTlsErrors: Counter<'provider' | 'stage'>;
  readonly passthroughAddressChecks: Counter<'result'>;
}

export function createMetrics(openConnections: () => number, registry: Registry = new Registry()): ProxyMetrics {
  collectDefaultMetrics({ register: registry });
  const registers = [registry];
  const m: ProxyMetrics = {
    registry,
    connections: new Counter({
      name: 'aigress_connections_total',
      help:
        'Captured connections, by where they were routed: mediated, passthrough_name (a non-AI name, to its original destination), ' +
        'passthrough_address (no name, to its original destination), refused (policy, proxy rules, or nowhere to send it).',
      labelNames: ['route'],
      registers,
    }),
    requests: new Counter({
      name: 'aigress_requests_total',
      help: 'AI requests handled, counted once each when it ends.',
      labelNames: ['provider', 'operation', 'model', 'decision', 'code'],
      registers,
    }),
    upstreamErrors: new Counter({
      name: 'aigress_upstream_errors_total',
      help: 'Failures talking to an AI provider (refused, reset, tls, timeout, truncated, ...).',
      labelNames: ['provider', 'reason'],
      registers,
    }),
    bodyTooLarge: new Counter({
      name: 'aigress_request_body_too_large_total',
      help: 'AI requests refused with 413 because the body was over the proxy limit.',
      registers,
    }),
    clientTlsErrors: new Counter({
      name: 'aigress_client_tls_errors_total',
      help:
        'Terminated TLS connections that ended without a request: the handshake failed (stage=handshake) or the app ' +
        'hung up right after it (stage=after_handshake), usually because it does not trust the aigress CA bundle.',
      labelNames: ['provider', 'stage'],
      registers,
    }),
    passthroughAddressChecks: new Counter({
      name: 'aigress_passthrough_address_checks_total',
      help:
        'Connections passed through by name to their original destination, by whether that address is among those the name ' +
        'resolves to for the proxy: match, mismatch (the SNI or Host names another host than the one dialled), unresolved.',
      labelNames: ['result'],
      registers,
    }),
  };
  new Gauge({
    name: 'aigress_open_connections',
    help: 'Captured connections currently open.',
    registers,
    collect() {
      this.set(openConnections());
    },
  });
  // Zero-valued series up front, so dashboards and alerts see them before the first event.
  for (const route of ROUTE_LABELS) m.connections.inc({ route }, 0);
  for (const result of ADDRESS_CHECKS) m.passthroughAddressChecks.inc({ result }, 0);
  return m;
}
