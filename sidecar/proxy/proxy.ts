import { unwatchFile, watchFile } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { Server as HttpServer } from 'node:http';
import type { Server, Socket } from 'node:net';
import type { Registry } from 'prom-client';
import { UserError, errorMessage } from '../../shared/errors.js';
import { createLogger, type Logger } from '../../shared/log.js';
import type { EgressPolicy } from '../../shared/policy/types.js';
import { compileHostMatcher } from '../../shared/providers/index.js';
import { buildPipeline, PipelineRunner } from '../pipeline/index.js';
import type { Pipeline, PipelineServices, PodIdentity } from '../pipeline/types.js';
import { createAdminServer } from './admin.js';
import { createServices, type CredentialOption } from './services.js';
import type { Writable } from '../telemetry/audit-sink.js';
import type { TelemetryConfig } from '../telemetry/config.js';
import type { Refusal } from '../telemetry/refusal.js';
import { PROXY_DEFAULTS } from './defaults.js';
import { parseExtraRoots, writeTrustBundle } from './bundle.js';
import { createConnectionHandler } from './connection.js';
import { loadOriginalDestination, type OriginalDestinationReader } from './original-dst.js';
import { createH1Front } from './h1.js';
import { createH2Front } from './h2.js';
import { listenCapture } from './listener.js';
import { Mediator, type MediatedConnection, type PolicyState } from './mediate.js';
import { createMetrics } from './metrics.js';
import type { CertificateSource, PolicySource } from './sources/types.js';
import { Upstreams } from './upstream.js';

// startProxy wires the parts: the capture listener hands each socket to connection.ts (peek → route →
// terminate / plain / pass-through / refuse), whose HTTP fronts (h1.ts, h2.ts) feed the Mediator; this file
// keeps readiness (certificates, policy, CA bundle), the admin server and drain.

export interface ProxyOptions {
  certificates: CertificateSource & { warmUp?(): Promise<void> };
  policy: PolicySource;
  /** Where bundle.pem and truststore.p12 go (default /var/run/aigress/ca). */
  bundleDir?: string;
  /** PEM file of extra roots merged into both (--extra-ca-file); re-read when it changes (a mounted ConfigMap). */
  extraCaFile?: string;
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
  /** Slow clients: TLS handshake and request head deadline; longest pause inside a request body. */
  clientHeaderTimeoutMs?: number;
  clientBodyTimeoutMs?: number;
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
  /**
   * Reads SO_ORIGINAL_DST of captured sockets: the addon's reader by default; `null` routes by name only
   * (tests of that mode). When the addon is missing the proxy says so once at start.
   */
  originalDestination?: OriginalDestinationReader | null;
  /** With original destinations: how long a silent client is waited for before pass-through (server-first protocols). */
  serverFirstWaitMs?: number;
  /** Shared budgets' Redis URL (`--redis-url`) and password (from a Secret). */
  redisUrl?: string;
  redisPassword?: string;
  /** Managed credentials (--credentials-dir, or the control plane's); none by default. */
  credentials?: CredentialOption;
  /** OTLP export, the audit log and content capture (sidecar/telemetry/); off when absent. */
  telemetry?: TelemetryConfig;
  /** The operational log's stream, for `--audit-log stdout`. */
  stdout?: Writable;
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

const KEEP_ALIVE_MS = 30_000;
const WARM_UP_FALLBACK_MS = 1_000;

const EXTRA_CA_POLL_MS = 2_000;

async function readExtraFile(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new UserError(`--extra-ca-file ${file}: cannot read it: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`);
  }
}

export async function startProxy(opts: ProxyOptions): Promise<ProxyHandle> {
  let stopWatchingExtra: (() => void) | undefined;
  const baseLog = opts.logger ?? createLogger('proxy');
  const identity = opts.identity ?? {};
  const log = Object.keys(identity).length > 0 ? baseLog.child(identity) : baseLog;
  const upstreamTimeoutMs = opts.upstreamTimeoutMs ?? DEFAULTS.upstreamTimeoutMs;
  const peekTimeoutMs = opts.peekTimeoutMs ?? DEFAULTS.peekTimeoutMs;
  const drainTimeoutMs = opts.drainTimeoutMs ?? DEFAULTS.drainTimeoutMs;
  const clientHeaderTimeoutMs = opts.clientHeaderTimeoutMs ?? DEFAULTS.clientHeaderTimeoutMs;
  const clientBodyTimeoutMs = opts.clientBodyTimeoutMs ?? DEFAULTS.clientBodyTimeoutMs;
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
  const serviceSet = await createServices({
    registry: metrics.registry,
    log,
    ...(opts.redisUrl !== undefined && { redisUrl: opts.redisUrl }),
    ...(opts.redisPassword !== undefined && { redisPassword: opts.redisPassword }),
    ...(identity.pod !== undefined && { proxyName: identity.pod }),
    credentials: opts.credentials,
    maxBodyBytes: opts.maxBodyBytes ?? DEFAULTS.maxBodyBytes,
    identity,
    telemetry: opts.telemetry,
    ...(opts.stdout && { stdout: opts.stdout }),
  });
  const services = serviceSet.services;
  const runner = new PipelineRunner({ registry: metrics.registry, log });
  // Requests refused before the pipeline (h1.ts, h2.ts, mediate.ts) get an audit record and a span as well.
  const t = services.telemetry;
  const refused = t?.refused && ((r: Refusal): void => t.refused!(r, { adapter: state?.matchHost(r.host), policy: state?.policy }));
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
    ...(refused && { refused }),
  });

  const h1 = createH1Front(mediator, {
    keepAliveMs: KEEP_ALIVE_MS,
    idleTimeoutMs: upstreamTimeoutMs + 10_000, // idle socket; a long upstream wait must not trip it
    headerTimeoutMs: clientHeaderTimeoutMs,
    bodyTimeoutMs: clientBodyTimeoutMs,
    state: () => state,
    ...(refused && { refused }),
  });
  // HTTP/2 sessions (ALPN h2) get the same Mediator through h2.ts.
  const h2 = createH2Front(mediator, {
    idleTimeoutMs: KEEP_ALIVE_MS,
    headerTimeoutMs: clientHeaderTimeoutMs,
    bodyTimeoutMs: clientBodyTimeoutMs,
    log,
    state: () => state,
    ...(refused && { refused }),
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
    const bundleDir = opts.bundleDir ?? DEFAULTS.bundleDir;
    const extraFile = opts.extraCaFile;
    const readExtra = async (): Promise<string[]> => (extraFile === undefined ? [] : parseExtraRoots(await readExtraFile(extraFile), extraFile));
    await writeTrustBundle(bundleDir, certs.caPem(), await readExtra());
    if (extraFile !== undefined) {
      // A ConfigMap volume changes by an atomic symlink swap: polling the path sees it. A bad edit keeps the
      // last good bundle and is logged.
      watchFile(extraFile, { interval: EXTRA_CA_POLL_MS, persistent: false }, () => {
        readExtra()
          .then((extra) => writeTrustBundle(bundleDir, certs.caPem(), extra).then(() => log.info({ file: extraFile, roots: extra.length }, 'extra CA roots reloaded into the bundle')))
          .catch((err: unknown) => log.error({ file: extraFile, err: errorMessage(err) }, 'extra CA roots not reloaded; the bundle keeps the previous ones'));
      });
      stopWatchingExtra = () => unwatchFile(extraFile);
    }
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

  let originalDestination: OriginalDestinationReader | undefined;
  if (opts.originalDestination === undefined) {
    const loaded = loadOriginalDestination();
    if (loaded.ok) {
      originalDestination = loaded.read;
      log.info({ addon: loaded.file }, 'original destinations: SO_ORIGINAL_DST available; unnamed connections pass through to where they were going');
    } else {
      log.warn(
        { reason: loaded.why },
        'original destinations unavailable: connections without a name (no SNI, not HTTP, server-first) are closed and pass-through dials names',
      );
    }
  } else originalDestination = opts.originalDestination ?? undefined;

  const handleCaptured = createConnectionHandler({
    originalDestination,
    serverFirstWaitMs: opts.serverFirstWaitMs ?? DEFAULTS.serverFirstWaitMs,
    state: () => state,
    ready: readyOrFail,
    certificates: certs,
    h1,
    h2,
    metrics,
    log,
    peekTimeoutMs,
    handshakeTimeoutMs: clientHeaderTimeoutMs,
    resolve: opts.resolve,
    track: (conn) => {
      mediated.add(conn);
      conn.io.once('close', () => mediated.delete(conn));
    },
  });

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
    handleCaptured(socket).catch((err: unknown) => {
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
      h1.close();
      await Promise.allSettled([...ending]);
      await state?.pipeline.close();
      await serviceSet.close();
      await upstreams.close();
      stopWatchingExtra?.();
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
