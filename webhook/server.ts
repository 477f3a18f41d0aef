import { readFile } from 'node:fs/promises';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { createSecureContext } from 'node:tls';
import type { Logger } from '../shared/log.js';
import { admit, type AdmissionOutcome } from './admission.js';
import type { ProviderId } from '../shared/policy/types.js';
import type { InjectionConfig } from './config.js';
import { createWebhookMetrics, type WebhookMetrics } from './metrics.js';

// The control plane's HTTPS server: a small route table (method + exact path → handler) so other control-plane
// parts mount their endpoints (`/v1/certificates`, `/v1/ca`, `/v1/policy`) with `addRoute` beside `/mutate`.
// Handlers get the whole body as a Buffer (bounded), return status + body, and never see a socket error.

/** The API server caps admission objects at 3 MiB; anything larger is not an AdmissionReview we must read. */
export const MAX_BODY_BYTES = 3 * 1024 * 1024;

export interface RouteRequest {
  method: string;
  path: string;
  url: URL;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** For what the table does not abstract: the TLS socket (client certificates), remote address. */
  raw: IncomingMessage;
  /** process.hrtime.bigint() when the request arrived, for latency metrics that include reading the body. */
  receivedAt: bigint;
}

export interface RouteResponse {
  status: number;
  headers?: Record<string, string>;
  /** Sent as application/json unless `text` or `headers['content-type']` say otherwise. */
  json?: unknown;
  text?: string;
}

export type RouteHandler = (req: RouteRequest) => RouteResponse | Promise<RouteResponse>;

export interface RouteOptions {
  /** Default MAX_BODY_BYTES; a larger body gets 413 without reaching the handler. */
  maxBodyBytes?: number;
  /** Told when the server answers for the route without calling it (413), so the route can count and log it. */
  onRejected?: (status: number, message: string, receivedAt: bigint) => void;
}

export type TlsSource = { certPem: string; keyPem: string } | { certFile: string; keyFile: string; reloadIntervalMs: number };

export interface ControlPlaneServerOptions {
  tls: TlsSource;
  logger: Logger;
  metrics?: WebhookMetrics;
  /** A connection that has not finished its TLS handshake by then is closed (default HANDSHAKE_TIMEOUT_MS). */
  handshakeTimeoutMs?: number;
}

/**
 * The API server and proxies handshake at once; Node's default (120 s) would let idle connections from any pod
 * hold file descriptors for two minutes each.
 */
export const HANDSHAKE_TIMEOUT_MS = 10_000;
/** After an error answer, how long the peer gets to read it before the socket is destroyed regardless. */
const ERROR_LINGER_MS = 2_000;

/** What /readyz answers beyond "listening": `ready` false → 503; `notes` say why, or what is degraded. */
export interface Readiness {
  ready: boolean;
  notes: string[];
}

interface Route extends RouteOptions {
  handler: RouteHandler;
  maxBodyBytes: number;
}

class BodyTooLarge extends Error {}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) return Promise.reject(new BodyTooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    req.on('data', (chunk: Buffer) => {
      if (done) return;
      size += chunk.length;
      if (size > limit) {
        done = true;
        chunks.length = 0;
        reject(new BodyTooLarge());
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (!done) resolve(Buffer.concat(chunks));
      done = true;
    });
    req.on('error', (err) => {
      if (!done) reject(err);
      done = true;
    });
  });
}

async function readPemFiles(certFile: string, keyFile: string): Promise<{ cert: string; key: string }> {
  const [cert, key] = await Promise.all([readFile(certFile, 'utf8'), readFile(keyFile, 'utf8')]);
  createSecureContext({ cert, key }); // throws on a mismatched or malformed pair
  return { cert, key };
}

export class ControlPlaneServer {
  readonly server: Server;
  readonly metrics: WebhookMetrics;
  private readonly routes = new Map<string, Map<string, Route>>();
  private readonly log: Logger;
  private reloadTimer: NodeJS.Timeout | undefined;
  private current: { cert: string; key: string } | undefined;
  private listening = false;
  private readiness: () => Readiness = () => ({ ready: true, notes: [] });

  private constructor(opts: ControlPlaneServerOptions, pem: { cert: string; key: string }) {
    this.log = opts.logger;
    this.metrics = opts.metrics ?? createWebhookMetrics();
    this.current = pem;
    const handshakeTimeout = opts.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS;
    this.server = createServer({ cert: pem.cert, key: pem.key, minVersion: 'TLSv1.2', handshakeTimeout }, (req, res) => {
      this.dispatch(req, res).catch((err: unknown) => this.fail(res, err));
    });
    // The API server gives up on a webhook after at most 30 s; nothing here should take longer.
    this.server.requestTimeout = 30_000;
    this.server.headersTimeout = 20_000;
    // node:https forwards TLS handshake failures (including the handshake timeout) to 'clientError' as well.
    // Only an HTTP parse error (HPE_*) on an established connection can be answered; a socket whose handshake
    // never finished cannot carry an answer, and end() on it would wait for ever, holding its descriptor.
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
      const code = err.code ?? '';
      if (!code.startsWith('HPE_') || !socket.writable) {
        this.log.debug({ err: err.message, code }, 'connection failed before a request (TLS handshake or transport)');
        socket.destroy();
        return;
      }
      this.log.debug({ err: err.message, code }, 'malformed HTTP request');
      const status = code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request';
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      setTimeout(() => socket.destroy(), ERROR_LINGER_MS).unref();
    });
    if ('certFile' in opts.tls) this.watchCertificate(opts.tls);
    this.addRoute('GET', '/healthz', () => ({ status: 200, text: 'ok\n' }));
    this.addRoute('GET', '/readyz', () => {
      if (!this.listening) return { status: 503, text: 'not ready: shutting down\n' };
      const r = this.readiness();
      const notes = r.notes.map((n) => `${n}\n`).join('');
      return r.ready ? { status: 200, text: `ready\n${notes}` } : { status: 503, text: `not ready\n${notes}` };
    });
    this.addRoute('GET', '/metrics', async () => ({
      status: 200,
      headers: { 'content-type': this.metrics.registry.contentType },
      text: await this.metrics.registry.metrics(),
    }));
  }

  /** Loads the certificate (files are read once here, then watched) and builds the server; nothing listens yet. */
  static async create(opts: ControlPlaneServerOptions): Promise<ControlPlaneServer> {
    const pem = 'certFile' in opts.tls ? await readPemFiles(opts.tls.certFile, opts.tls.keyFile) : { cert: opts.tls.certPem, key: opts.tls.keyPem };
    return new ControlPlaneServer(opts, pem);
  }

  addRoute(method: string, path: string, handler: RouteHandler, opts: RouteOptions = {}): void {
    const byMethod = this.routes.get(path) ?? new Map<string, Route>();
    if (byMethod.has(method)) throw new Error(`route ${method} ${path} is already registered`);
    byMethod.set(method, { ...opts, handler, maxBodyBytes: opts.maxBodyBytes ?? MAX_BODY_BYTES });
    this.routes.set(path, byMethod);
  }

  /** What /readyz asks besides "listening" (the control plane: policies loaded; degraded parts listed). */
  setReadiness(check: () => Readiness): void {
    this.readiness = check;
  }

  /** Serves a new certificate from the next TLS handshake on (for certificates renewed in memory). */
  setCertificate(certPem: string, keyPem: string): void {
    this.server.setSecureContext({ cert: certPem, key: keyPem, minVersion: 'TLSv1.2' });
    this.current = { cert: certPem, key: keyPem };
  }

  async listen(port: number, host?: string): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.listening = true;
    return (this.server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    this.listening = false;
    if (this.reloadTimer) clearInterval(this.reloadTimer);
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeIdleConnections();
    });
  }

  // Kubernetes updates a mounted Secret by swapping a symlink, which file watchers miss; polling the contents is
  // simple and catches every kind of update. A half-written pair (new cert, old key) fails validation and is
  // retried on the next tick; the server keeps serving the last good pair meanwhile.
  private watchCertificate(files: { certFile: string; keyFile: string; reloadIntervalMs: number }): void {
    this.reloadTimer = setInterval(() => {
      readPemFiles(files.certFile, files.keyFile).then(
        (pem) => {
          if (pem.cert === this.current?.cert && pem.key === this.current.key) return;
          this.setCertificate(pem.cert, pem.key);
          this.log.info({ certFile: files.certFile }, 'serving certificate reloaded');
        },
        (err: unknown) => this.log.warn({ err: (err as Error).message, certFile: files.certFile }, 'serving certificate not reloaded'),
      );
    }, files.reloadIntervalMs);
    this.reloadTimer.unref();
  }

  private async dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const receivedAt = process.hrtime.bigint();
    const url = new URL(req.url ?? '/', 'https://localhost');
    const method = req.method ?? 'GET';
    const byMethod = this.routes.get(url.pathname);
    if (!byMethod) return this.send(res, { status: 404, json: { message: `no route for ${url.pathname}` } }, req);
    const route = byMethod.get(method);
    if (!route) {
      const allow = [...byMethod.keys()].join(', ');
      return this.send(res, { status: 405, headers: { allow }, json: { message: `${method} not allowed on ${url.pathname} (use ${allow})` } }, req);
    }
    let body: Buffer;
    try {
      body = await readBody(req, route.maxBodyBytes);
    } catch (err) {
      if (err instanceof BodyTooLarge) {
        const message = `request body over ${route.maxBodyBytes} bytes`;
        route.onRejected?.(413, message, receivedAt);
        return this.send(res, { status: 413, json: { message } }, req, true);
      }
      throw err;
    }
    const answer = await route.handler({ method, path: url.pathname, url, headers: req.headers, body, raw: req, receivedAt });
    this.send(res, answer, req);
  }

  private send(res: ServerResponse, r: RouteResponse, req: IncomingMessage, close = false): void {
    if (res.headersSent || res.destroyed) return;
    const json = r.text === undefined;
    const payload = json ? JSON.stringify(r.json ?? {}) : r.text!;
    const headers: Record<string, string | number> = {
      'content-type': json ? 'application/json' : 'text/plain; charset=utf-8',
      ...r.headers,
      'content-length': Buffer.byteLength(payload),
    };
    if (close) headers.connection = 'close';
    res.writeHead(r.status, headers);
    res.end(payload);
    // An unread (oversized) body is discarded, not buffered.
    if (close) req.resume();
  }

  private fail(res: ServerResponse, err: unknown): void {
    this.log.error({ err: (err as Error)?.message ?? String(err) }, 'request handler failed');
    if (!res.headersSent && !res.destroyed) {
      res.writeHead(500, { 'content-type': 'application/json', connection: 'close' });
      res.end(JSON.stringify({ message: 'internal error' }));
    }
  }
}

export interface WebhookServerOptions extends ControlPlaneServerOptions {
  injection: InjectionConfig;
  /** Providers a namespace has managed credentials for (the control plane's policies); none without one. */
  managedCredentials?: (namespace: string) => readonly ProviderId[];
}

/** The control-plane server with the admission webhook mounted at POST /mutate. */
export async function createWebhookServer(opts: WebhookServerOptions): Promise<ControlPlaneServer> {
  const server = await ControlPlaneServer.create(opts);
  const { admissions, admissionDuration } = server.metrics;
  const record = (o: Pick<AdmissionOutcome, 'result' | 'reason' | 'log'>, receivedAt: bigint): void => {
    const seconds = Number(process.hrtime.bigint() - receivedAt) / 1e9;
    admissions.inc({ result: o.result, reason: o.reason });
    admissionDuration.observe({ result: o.result }, seconds);
    opts.logger.info({ ...o.log, decision: o.result, reason: o.reason, durationMs: Math.round(seconds * 1e6) / 1e3 }, 'admission');
  };
  server.addRoute(
    'POST',
    '/mutate',
    (req) => {
      const outcome = admit(req.body, opts.injection, opts.managedCredentials);
      record(outcome, req.receivedAt);
      return { status: outcome.status, json: outcome.body };
    },
    { onRejected: (_status, message, receivedAt) => record({ result: 'bad-request', reason: 'body-too-large', log: { message } }, receivedAt) },
  );
  return server;
}
