import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { errorMessage } from '../../shared/errors.js';
import type { Logger } from '../../shared/log.js';
import type { H1Front } from './h1.js';
import type { H2Front } from './h2.js';
import { answerAndDiscard, rawResponse } from './limits.js';
import { peekConnection } from './listener.js';
import type { MediatedConnection, PolicyState } from './mediate.js';
import type { ProxyMetrics } from './metrics.js';
import { passThrough } from './passthrough.js';
import { createAddressChecker, type AddressChecker } from './passthrough-check.js';
import { PEEK_LIMIT } from './peek.js';
import type { OriginalDestinationReader } from './original-dst.js';
import { decideRoute, routeLabel, type Route } from './route.js';
import type { CertificateSource } from './sources/types.js';
import { LogThrottle } from './throttle.js';
import { terminateTls } from './tls.js';

// One captured connection, from its first byte to where it goes: peek (SNI or Host) → route (pure, route.ts)
// → terminate TLS and serve HTTP/1.1 or HTTP/2 / serve plain HTTP / pass through untouched / refuse.

const PASSTHROUGH_CONNECT_TIMEOUT_MS = 10_000;
/** One warning per host and kind of TLS failure per minute; the metric counts them all. */
const TLS_END_LOG_WINDOW_MS = 60_000;

/** TLS alerts by which a client says it does not accept the certificate it was shown. */
const CERT_REJECTED = /ALERT_(UNKNOWN_CA|BAD_CERTIFICATE|CERTIFICATE_UNKNOWN|CERTIFICATE_EXPIRED|UNSUPPORTED_CERTIFICATE|DECRYPT_ERROR)$/;

export type ClientTlsEnd = 'certificate-rejected' | 'handshake-failed' | 'closed-during-handshake' | 'no-request';

/** What a terminated TLS connection that carried no request tells the operator, worded for what happened. */
export function clientTlsEnd(stage: 'handshake' | 'after_handshake', err: string | undefined): { reason: ClientTlsEnd; message: string } {
  if (err !== undefined && CERT_REJECTED.test(err)) {
    return { reason: 'certificate-rejected', message: 'app rejected the aigress certificate: does it trust the aigress CA bundle?' };
  }
  if (stage === 'after_handshake') {
    return { reason: 'no-request', message: 'app closed the TLS connection without sending a request (a pre-warmed or probing connection, or a client that checks the certificate only after the handshake)' };
  }
  if (err !== undefined && err !== 'ECONNRESET') return { reason: 'handshake-failed', message: 'TLS handshake with the app failed' };
  // Node's TLS 1.3 client sends no alert when it rejects a certificate: it just closes, so this may be that too.
  return { reason: 'closed-during-handshake', message: 'app closed the connection during the TLS handshake (Node clients do so, without an alert, when they do not trust the certificate)' };
}

export interface ConnectionDeps {
  /** The compiled policy; undefined until the first one is in place. */
  state(): PolicyState | undefined;
  /** Settles when the proxy is ready (or failed to become so): a connection before that waits on it. */
  ready: Promise<void>;
  certificates: CertificateSource;
  h1: H1Front;
  h2: H2Front;
  metrics: ProxyMetrics;
  log: Logger;
  /** How long a new connection may take to send enough bytes to route it (and wait for readiness). */
  peekTimeoutMs: number;
  /** SO_ORIGINAL_DST of a captured socket; absent when the addon is not available (routing by name only). */
  originalDestination?: OriginalDestinationReader;
  /** A TLS handshake with the app not done within this is cut (a client stalled mid-handshake). */
  handshakeTimeoutMs: number;
  /** With an original destination: how long a silent client is waited for before it is passed through. */
  serverFirstWaitMs: number;
  /** Checks a by-name pass-through's original address against the name's (default: the system resolver, cached). */
  addressChecker?: AddressChecker;
  /** host → address to dial instead (demo, loopback tests). */
  resolve?: Readonly<Record<string, { host: string; port: number }>>;
  /** Called for every connection that carries AI requests (drain needs them). */
  track(conn: MediatedConnection): void;
}

/** Handles one captured socket to its end; resolves once it is routed (not when it closes). */
export type ConnectionHandler = (socket: Socket) => Promise<void>;

export function createConnectionHandler(deps: ConnectionDeps): ConnectionHandler {
  const { metrics, log, certificates: certs } = deps;
  const tlsEndLog = new LogThrottle(TLS_END_LOG_WINDOW_MS);
  const checkAddress = deps.addressChecker ?? createAddressChecker();
  const mismatchLog = new LogThrottle(TLS_END_LOG_WINDOW_MS);

  /** On the side of a by-name pass-through to its original address: counted and logged, never awaited. */
  function checkPassthroughAddress(host: string, address: string, port: number): void {
    void checkAddress(host, address).then(({ result, resolved }) => {
      metrics.passthroughAddressChecks.inc({ result });
      if (result === 'match' || result === 'unchecked') return;
      const t = mismatchLog.check(`${host} ${result}`);
      if (!t.log) return;
      const message =
        result === 'mismatch'
          ? 'pass-through: the app named a host whose addresses do not include the one it connected to (SNI or Host spoofed, or DNS answers that differ)'
          : 'pass-through: the host the app named does not resolve for the proxy';
      log.warn({ host, target: `${address}:${port}`, resolved: resolved.slice(0, 8), similarSinceLast: t.suppressed }, message);
    });
  }

  async function handleCaptured(socket: Socket): Promise<void> {
    // Read before anything else: the conntrack entry is there as long as the socket is.
    let original;
    try {
      original = deps.originalDestination?.(socket);
    } catch (err) {
      log.warn({ err: errorMessage(err) }, 'original destination unreadable; routing by name');
    }
    const peeked = await peekConnection(socket, deps.peekTimeoutMs, original ? deps.serverFirstWaitMs : undefined);
    // The capture server allows half-open sockets (pass-through needs them), so a client that hung up before
    // it could be routed (Happy Eyeballs losers, pre-warmed connections, TCP probes) is not closed by Node:
    // without this its descriptor stays open for good.
    if (peeked.kind === 'closed') {
      socket.destroy();
      return;
    }
    if (!deps.state()) {
      // Apps start after the proxy is ready; a connection before that waits for it rather than bypassing policy.
      const ok = await Promise.race([
        deps.ready.then(() => true, () => false),
        new Promise<boolean>((r) => setTimeout(() => r(false), deps.peekTimeoutMs).unref()),
      ]);
      if (!ok || !deps.state()) {
        socket.destroy();
        return;
      }
    }
    const s: PolicyState = deps.state()!;
    const what = peeked.kind === 'peeked' ? peeked.result : peeked.head.length === 0 ? ({ kind: 'silent' } as const) : ({ kind: 'stalled' } as const);
    const route: Route = decideRoute(what, s.matchHost, s.policy.spec.unmatchedEgress, original);
    metrics.connections.inc({ route: routeLabel(route) });
    const head = peeked.kind === 'peeked' ? peeked.head : Buffer.alloc(0);
    switch (route.route) {
      case 'mediated':
        if (route.tls) await terminate(socket, head, route.host, route.adapter.id);
        else servePlain(socket, head, route.host);
        return;
      case 'passthrough': {
        // The demo's and loopback tests' name overrides still apply to names; an original address is dialled as is.
        const target = (route.host !== undefined && deps.resolve?.[route.host]) || route.target;
        if (route.by === 'address') log.debug({ target: `${target.host}:${target.port}`, reason: route.reason }, 'passed through by address');
        else if (original && route.host !== undefined && target === route.target) checkPassthroughAddress(route.host, original.address, original.port);
        passThrough(socket, head, target, {
          connectTimeoutMs: PASSTHROUGH_CONNECT_TIMEOUT_MS,
          onClose: (error) => {
            if (error) log.warn({ host: route.host, target: `${target.host}:${target.port}`, by: route.by, err: error }, 'pass-through connection failed');
          },
        });
        return;
      }
      case 'denied':
        log.info({ host: route.host, tls: route.tls, reason: route.reason }, 'egress denied');
        if (route.tls) socket.destroy();
        else refuseRaw(socket, 403, `aigress: egress to ${route.host ?? 'this host'} is not allowed (${route.reason})`);
        return;
      case 'unmediated':
        // Without a name the proxy cannot know where the app meant to go; it never forwards blind.
        log.warn({ reason: route.reason, remotePort: socket.remotePort, bytes: head.length }, 'unmediated connection closed');
        if (route.status === 431) refuseRaw(socket, 431, `aigress: HTTP header block over ${PEEK_LIMIT} bytes`);
        else if (route.http) refuseRaw(socket, 400, route.reason === 'HTTP request without Host' ? 'aigress: HTTP request without a Host header' : `aigress: ${route.reason}`);
        else socket.destroy();
        return;
    }
  }

  async function terminate(socket: Socket, head: Buffer, host: string, provider: string): Promise<void> {
    let context;
    try {
      const c = certs.contextFor(host);
      context = c instanceof Promise ? await c : c;
    } catch (err) {
      // Fail closed: an AI host the proxy cannot terminate is never passed through.
      log.error({ host, err: errorMessage(err) }, 'no certificate for AI host; connection closed');
      socket.destroy();
      return;
    }
    if (socket.destroyed) return;
    const tlsSocket: TLSSocket = terminateTls(socket, head, context);
    const conn: MediatedConnection = { host, tls: true, io: tlsSocket, inflight: 0, requests: 0 };
    deps.track(conn);
    let secured = false;
    const handshakeDeadline = setTimeout(() => tlsSocket.destroy(), deps.handshakeTimeoutMs);
    handshakeDeadline.unref();
    tlsSocket.once('close', () => clearTimeout(handshakeDeadline));
    tlsSocket.once('secure', () => {
      secured = true;
      clearTimeout(handshakeDeadline);
      if (tlsSocket.alpnProtocol === 'h2') deps.h2.serve(tlsSocket, conn);
      else deps.h1.serve(tlsSocket, conn);
    });
    // A client that rejects our certificate may send an alert (error) or just hang up (close): either way the
    // handshake never completed. That is the usual sign of an app that does not trust the aigress bundle.
    let handshakeError: string | undefined;
    tlsSocket.on('error', (err: NodeJS.ErrnoException) => {
      // After the handshake, errors are the HTTP server's (clientError); but a TLS 1.3 client's certificate
      // alert arrives only then, and it is what tells "does not trust us" from "hung up".
      if (secured) {
        if (conn.requests === 0) handshakeError ??= err.code ?? err.message;
        return;
      }
      handshakeError ??= err.code ?? err.message;
      tlsSocket.destroy();
    });
    tlsSocket.once('close', () => {
      // Node clients verify the certificate after the TLS 1.3 handshake completes, then hang up: a connection
      // that ends without a single request is counted too (stage=after_handshake).
      if (secured && conn.requests > 0) return;
      const stage = secured ? 'after_handshake' : 'handshake';
      metrics.clientTlsErrors.inc({ provider, stage });
      const what = clientTlsEnd(stage, handshakeError);
      const t = tlsEndLog.check(`${host} ${what.reason}`);
      if (t.log) log.warn({ host, stage, reason: what.reason, err: handshakeError, similarSinceLast: t.suppressed }, what.message);
    });
  }

  function servePlain(socket: Socket, head: Buffer, host: string): void {
    const conn: MediatedConnection = { host, tls: false, io: socket, inflight: 0, requests: 0 };
    deps.track(conn);
    socket.allowHalfOpen = false; // only pass-through keeps half-open connections
    socket.unshift(head);
    deps.h1.serve(socket, conn);
    socket.resume();
  }

  return handleCaptured;
}

/** A refusal on the raw socket (no HTTP server has it yet): answered, then read and discarded briefly. */
function refuseRaw(socket: Socket, status: 400 | 403 | 431, message: string): void {
  socket.allowHalfOpen = false;
  answerAndDiscard(socket, rawResponse(status, message));
}
