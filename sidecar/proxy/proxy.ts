import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import type { Server, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { Registry } from 'prom-client';
import { errorMessage } from '../../shared/errors.js';
import { createLogger, type Logger } from '../../shared/log.js';
import type { EgressPolicy } from '../../shared/policy/types.js';
import { compileHostMatcher } from '../../shared/providers/index.js';
import { buildPipeline, PipelineRunner } from '../pipeline/index.js';
import type { Pipeline, PipelineServices, PodIdentity } from '../pipeline/types.js';
import { createAdminServer } from './admin.js';
import { createServices } from './services.js';
import { PROXY_DEFAULTS } from './defaults.js';
import { writeTrustBundle } from './bundle.js';
import { createH2Front } from './h2.js';
import { listenCapture, peekConnection } from './listener.js';
import { Mediator, type MediatedConnection, type PolicyState } from './mediate.js';
import { createMetrics } from './metrics.js';
import { passThrough } from './passthrough.js';
import { decideRoute, type Route } from './route.js';
import type { CertificateSource, PolicySource } from './sources.js';
import { terminateTls } from './tls.js';
import { Upstreams } from './upstream.js';

// startProxy wires the parts: capture listener → peek → route → (TLS termination → HTTP → pipeline → undici)
// or pass-through; the admin server; readiness (certificates, policy, CA bundle); drain.

export interface ProxyOptions {
  certificates: CertificateSource & { warmUp?(): Promise<void> };
  policy: PolicySource;
  /** Where bundle.pem and truststore.p12 go (default /var/run/aigress/ca). */
  bundleDir?: string;
  /** 0 picks a free port (tests). */
  capturePort?: number;
  adminPort?: number;
  /** Capture listener addresses; default loopback on both families. */
  listenAddresses?: readonly string[];
  /** Admin listener address; default all interfaces (kubelet probes the pod IP). */
  adminAddress?: string;
  maxBodyBytes?: number;
  drainTimeoutMs?: number;
  upstreamTimeoutMs?: number;
  /** How long a new connection may take to send enough bytes to route it. */
  peekTimeoutMs?: number;
  logger?: Logger;
  identity?: PodIdentity;
  /** host → address to dial instead (demo, loopback tests); TLS is still verified for the original name. */
  resolve?: Readonly<Record<string, { host: string; port: number }>>;
  /** Extra upstream roots (tests); in a pod NODE_EXTRA_CA_CERTS does this. */
  upstreamCa?: string | readonly string[];
  /** Metrics registry to serve (cluster mode passes the one its sources registered in); a new one by default. */
  registry?: Registry;
  /** Builds the processors for a policy; the real pipeline unless a test supplies its own. */
  buildPipeline?: (policy: EgressPolicy, services: PipelineServices) => Pipeline;
}

/** A listener could not bind; `which` tells the CLI which flag to name. */
export class ListenError extends Error {
  constructor(
    readonly which: 'capture' | 'admin',
    readonly address: string,
    readonly port: number,
    readonly code: string,
  ) {
    super(`${which} listener ${address}:${port}: ${code}`);
    this.name = 'ListenError';
  }
}

export interface ProxyHandle {
  readonly capturePort: number;
  readonly adminPort: number;
  /** Resolves when certificate, policy and CA bundle are in place (and /readyz says so); rejects if they fail. */
  readonly ready: Promise<void>;
  readonly registry: Registry;
  /** Stop accepting, let in-flight requests and streams finish (up to the drain timeout), then close all. */
  drain(timeoutMs?: number): Promise<void>;
  /** Stop now: in-flight work is cut. */
  close(): Promise<void>;
  /** Resolves once a drain or close (from any caller, incl. POST /shutdown) has finished. */
  readonly stopped: Promise<void>;
}

const DEFAULTS = PROXY_DEFAULTS;

const PASSTHROUGH_CONNECT_TIMEOUT_MS = 10_000;
const KEEP_ALIVE_MS = 30_000;
const WARM_UP_FALLBACK_MS = 1_000;

export async function startProxy(opts: ProxyOptions): Promise<ProxyHandle> {
  const baseLog = opts.logger ?? createLogger('proxy');
  const identity = opts.identity ?? {};
  const log = Object.keys(identity).length > 0 ? baseLog.child(identity) : baseLog;
  const upstreamTimeoutMs = opts.upstreamTimeoutMs ?? DEFAULTS.upstreamTimeoutMs;
  const peekTimeoutMs = opts.peekTimeoutMs ?? DEFAULTS.peekTimeoutMs;
  const drainTimeoutMs = opts.drainTimeoutMs ?? DEFAULTS.drainTimeoutMs;
  const certs = opts.certificates;

  const conns = new Set<Socket>();
  const mediated = new Set<MediatedConnection>();
  const metrics = createMetrics(() => conns.size, opts.registry);
  const upstreamCa = opts.upstreamCa === undefined ? undefined : typeof opts.upstreamCa === 'string' ? [opts.upstreamCa] : opts.upstreamCa;
  const upstreams = new Upstreams({ timeoutMs: upstreamTimeoutMs, resolve: opts.resolve, extraCa: upstreamCa });

  let state: PolicyState | undefined;
  let isReady = false;
  let draining = false;
  // Process-lifetime services: created once, handed to every pipeline build (a policy change rebuilds only the
  // processors, and closes the replaced ones).
  const serviceSet = createServices({ registry: metrics.registry, log });
  const services = serviceSet.services;
  const runner = new PipelineRunner({ registry: metrics.registry, log });
  const compile = (policy: EgressPolicy): PolicyState => ({
    policy,
    matchHost: compileHostMatcher(policy.spec.providers),
    pipeline: (opts.buildPipeline ?? buildPipeline)(policy, services),
  });
  const replace = (next: PolicyState): void => {
    const old = state;
    state = next;
    // In-flight exchanges keep their processors; what the old build holds is freed once they are done.
    if (old) void Promise.allSettled([...ending]).then(() => old.pipeline.close());
  };
  /** onEnd work still running (budget settlement): drain waits for it. */
  const ending = new Set<Promise<void>>();

  const mediator = new Mediator({
    runner,
    track: (work) => {
      ending.add(work);
      void work.finally(() => ending.delete(work));
    },
    state: () => state!,
    upstreams,
    metrics,
    log,
    identity,
    maxBodyBytes: opts.maxBodyBytes ?? DEFAULTS.maxBodyBytes,
    draining: () => draining,
  });

  // One HTTP server, never listening: captured sockets (TLS-terminated or plain) are handed to it.
  const http = createHttpServer({ noDelay: true, keepAliveTimeout: KEEP_ALIVE_MS });
  http.timeout = upstreamTimeoutMs + 10_000; // idle socket; a long upstream wait must not trip it
  const connOf = new WeakMap<Duplex, MediatedConnection>();
  http.on('request', (req, res) => {
    const conn = connOf.get(req.socket);
    if (conn) mediator.handle(req, res, conn);
    else res.destroy();
  });
  // HTTP/2 sessions (ALPN h2) get the same Mediator through h2.ts.
  const h2 = createH2Front(mediator, { idleTimeoutMs: KEEP_ALIVE_MS, log });
  http.on('checkContinue', (req, res) => {
    const conn = connOf.get(req.socket);
    if (conn) mediator.checkContinue(req, res, conn);
    else res.destroy();
  });
  http.on('connect', (_req, socket: Duplex) => {
    socket.end('HTTP/1.1 405 Method Not Allowed\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
  });
  http.on('upgrade', (_req, socket: Duplex) => {
    // WebSocket and other upgrades cannot be inspected yet: refuse rather than forward blind.
    const conn = connOf.get(socket);
    const adapter = conn && state?.matchHost(conn.host);
    const e = adapter?.errorResponse('policy', 501, 'aigress: protocol upgrades (WebSocket) to AI providers are not supported');
    const body = e?.body ?? '';
    const ct = e?.headers['content-type'] ?? 'text/plain';
    socket.end(`HTTP/1.1 501 Not Implemented\r\ncontent-type: ${ct}\r\nconnection: close\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
  });
  http.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
  });

  const readyOrFail = (async () => {
    const t0 = performance.now();
    const [, policy] = await Promise.all([certs.ready(), opts.policy.ready()]);
    state = compile(policy);
    opts.policy.onChange((next) => {
      try {
        replace(compile(next));
        log.info({ policy: next.metadata.name }, 'policy applied');
      } catch (err) {
        log.error({ policy: next.metadata.name, err: errorMessage(err) }, 'policy could not be compiled; keeping the previous one');
      }
    });
    await writeTrustBundle(opts.bundleDir ?? DEFAULTS.bundleDir, certs.caPem());
    isReady = true;
    log.info(
      { policy: policy.metadata.name, loadMs: Math.round(performance.now() - t0), sinceProcessStartMs: Math.round(process.uptime() * 1000) },
      'proxy ready',
    );
    // Off the readiness path: load the upstream HTTP client and the certificate minting code (~250 ms of
    // module loading that blocks the event loop) once the startup probe has seen ready, or a second after.
    setTimeout(warmUp, WARM_UP_FALLBACK_MS).unref();
  })();
  readyOrFail.catch(() => undefined); // the caller awaits `ready`; this keeps an unawaited failure from crashing

  let warmed = false;
  function warmUp(): void {
    if (warmed || !isReady) return;
    warmed = true;
    setImmediate(() => {
      upstreams.load().catch((err: unknown) => log.error({ err: errorMessage(err) }, 'upstream client failed to load'));
      certs.warmUp?.().catch((err: unknown) => log.error({ err: errorMessage(err) }, 'certificate warm-up failed'));
    });
  }

  async function whenRouted(socket: Socket): Promise<void> {
    const peeked = await peekConnection(socket, peekTimeoutMs);
    if (peeked.kind === 'closed') return;
    if (!state) {
      // Apps start after the proxy is ready; a connection before that waits for it rather than bypassing policy.
      const ok = await Promise.race([
        readyOrFail.then(() => true, () => false),
        new Promise<boolean>((r) => setTimeout(() => r(false), peekTimeoutMs).unref()),
      ]);
      if (!ok || !state) {
        socket.destroy();
        return;
      }
    }
    const s: PolicyState = state;
    const route: Route =
      peeked.kind === 'timeout'
        ? { route: 'unmediated', reason: peeked.head.length === 0 ? 'client sent nothing' : 'client sent too little to route' }
        : decideRoute(peeked.result, s.matchHost, s.policy.spec.unmatchedEgress);
    metrics.connections.inc({ route: route.route });
    const head = peeked.kind === 'peeked' ? peeked.head : Buffer.alloc(0);
    switch (route.route) {
      case 'mediated':
        if (route.tls) await terminate(socket, head, route.host, route.adapter.id);
        else servePlain(socket, head, route.host);
        return;
      case 'passthrough': {
        const target = opts.resolve?.[route.host] ?? { host: route.host, port: route.port };
        passThrough(socket, head, target, {
          connectTimeoutMs: PASSTHROUGH_CONNECT_TIMEOUT_MS,
          onClose: (error) => {
            if (error) log.warn({ host: route.host, port: route.port, err: error }, 'pass-through connection failed');
          },
        });
        return;
      }
      case 'denied':
        log.info({ host: route.host, tls: route.tls, reason: route.reason }, 'egress denied');
        if (route.tls) socket.destroy();
        else refuseRaw(socket, 403, 'Forbidden', `aigress: egress to ${route.host ?? 'this host'} is not allowed (${route.reason})`);
        return;
      case 'unmediated':
        // Without a name the proxy cannot know where the app meant to go; it never forwards blind.
        log.warn({ reason: route.reason, remotePort: socket.remotePort, bytes: head.length }, 'unmediated connection closed');
        if (route.http) refuseRaw(socket, 400, 'Bad Request', 'aigress: HTTP request without a Host header');
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
    track(conn);
    let secured = false;
    tlsSocket.once('secure', () => {
      secured = true;
      if (tlsSocket.alpnProtocol === 'h2') h2.serve(tlsSocket, conn);
      else http.emit('connection', tlsSocket);
    });
    // A client that rejects our certificate may send an alert (error) or just hang up (close): either way the
    // handshake never completed. That is the usual sign of an app that does not trust the aigress bundle.
    let handshakeError: string | undefined;
    tlsSocket.on('error', (err: NodeJS.ErrnoException) => {
      if (secured) return; // after the handshake, errors are the HTTP server's (clientError)
      handshakeError ??= err.code ?? err.message;
      tlsSocket.destroy();
    });
    tlsSocket.once('close', () => {
      // Node clients verify the certificate after the TLS 1.3 handshake completes, then hang up: a connection
      // that ends without a single request is counted too (stage=after_handshake).
      if (secured && conn.requests > 0) return;
      const stage = secured ? 'after_handshake' : 'handshake';
      metrics.clientTlsErrors.inc({ provider, stage });
      log.warn({ host, stage, err: handshakeError ?? 'closed without a request' }, 'app ended the TLS connection without a request (does it trust the aigress CA bundle?)');
    });
    connOf.set(tlsSocket, conn);
  }

  function servePlain(socket: Socket, head: Buffer, host: string): void {
    const conn: MediatedConnection = { host, tls: false, io: socket, inflight: 0, requests: 0 };
    track(conn);
    connOf.set(socket, conn);
    socket.allowHalfOpen = false; // only pass-through keeps half-open connections
    socket.unshift(head);
    http.emit('connection', socket);
    socket.resume();
  }

  function track(conn: MediatedConnection): void {
    mediated.add(conn);
    conn.io.once('close', () => mediated.delete(conn));
  }

  function refuseRaw(socket: Socket, status: number, reason: string, message: string): void {
    const body = `${message}\n`;
    socket.end(`HTTP/1.1 ${status} ${reason}\r\ncontent-type: text/plain\r\nconnection: close\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
  }

  const onCaptured = (socket: Socket): void => {
    if (draining) {
      socket.destroy();
      return;
    }
    conns.add(socket);
    socket.once('close', () => {
      conns.delete(socket);
      if (draining && conns.size === 0) allClosed?.();
    });
    socket.on('error', () => socket.destroy()); // every stage reports its own failures; this keeps them from crashing
    whenRouted(socket).catch((err: unknown) => {
      log.error({ err: errorMessage(err) }, 'connection handling failed');
      socket.destroy();
    });
  };

  // Admin first, so probes get an answer (503) rather than a refused connection while loading.
  const admin = createAdminServer({
    ready: () => isReady,
    draining: () => draining,
    registry: metrics.registry,
    readyServed: warmUp,
    shutdown: () => {
      log.info('shutdown requested on the admin port');
      void drain();
    },
  });
  const adminPort = await listenAdmin(admin, opts.adminAddress, opts.adminPort ?? DEFAULTS.adminPort);
  let capture: { servers: Server[]; port: number };
  const captureAddresses = opts.listenAddresses ?? DEFAULTS.listenAddresses;
  const capturePort = opts.capturePort ?? DEFAULTS.capturePort;
  try {
    const c = await listenCapture(captureAddresses, capturePort, onCaptured);
    for (const s of c.skipped) log.info({ address: s.address, code: s.code }, 'capture address not available; skipped');
    capture = c;
  } catch (err) {
    admin.close();
    throw new ListenError('capture', captureAddresses.join(','), capturePort, (err as NodeJS.ErrnoException).code ?? errorMessage(err));
  }
  log.info({ capturePort: capture.port, adminPort }, 'proxy listening');

  let allClosed: (() => void) | undefined;
  let stopping: Promise<void> | undefined;
  let stoppedResolve!: () => void;
  const stopped = new Promise<void>((r) => (stoppedResolve = r));

  function drain(timeoutMs: number = drainTimeoutMs): Promise<void> {
    stopping ??= (async () => {
      draining = true;
      const t0 = performance.now();
      for (const s of capture.servers) s.close();
      for (const c of mediated) {
        if (c.goAway) c.goAway(); // HTTP/2: GOAWAY now, open streams finish
        else if (c.inflight === 0) c.io.end(); // idle keep-alive connections
      }
      if (conns.size > 0 && timeoutMs > 0) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, timeoutMs);
          allClosed = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
      const cut = conns.size;
      for (const s of conns) s.destroy();
      for (const c of mediated) c.io.destroy();
      await Promise.allSettled([...ending]);
      await state?.pipeline.close();
      await serviceSet.close();
      await upstreams.close();
      certs.close();
      opts.policy.close();
      await new Promise<void>((r) => {
        admin.close(() => r());
        admin.closeAllConnections();
      });
      log.info({ drainMs: Math.round(performance.now() - t0), cutConnections: cut }, 'proxy stopped');
      stoppedResolve();
    })();
    return stopping;
  }

  return {
    capturePort: capture.port,
    adminPort,
    ready: readyOrFail,
    registry: metrics.registry,
    drain,
    close: () => drain(0),
    stopped,
  };
}

async function listenAdmin(server: HttpServer, address: string | undefined, port: number): Promise<number> {
  const attempt = (host: string): Promise<number> =>
    new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => reject(new ListenError('admin', host, port, err.code ?? err.message));
      server.once('error', onError);
      server.listen({ host, port }, () => {
        server.off('error', onError);
        const a = server.address();
        resolve(a && typeof a === 'object' ? a.port : port);
      });
    });
  if (address !== undefined) return attempt(address);
  try {
    return await attempt('::'); // dual-stack: the pod IP of either family
  } catch (err) {
    const code = (err as ListenError).code;
    if (code !== 'EAFNOSUPPORT' && code !== 'EADDRNOTAVAIL') throw err;
    return attempt('0.0.0.0');
  }
}
