import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Refusal } from '../telemetry/refusal.js';
import type { MediatedConnection, Mediator, PolicyState } from './mediate.js';
import { answerAndDiscard, checkHead, HARD_HEADER_FIELDS, MAX_HEADER_BYTES, parseProblem, rawResponse, watchBody, type HeadProblem } from './limits.js';

// HTTP/1.1 from the app (plain HTTP, or terminated TLS without ALPN h2). One node:http server that never
// listens: each captured socket is handed to it with the MediatedConnection it belongs to, and every request
// goes to the Mediator once its head passed the limits of limits.ts. Beside h2.ts, which does the same for
// HTTP/2 sessions.

export interface H1Front {
  /** Serve HTTP/1.1 on a socket (TLSSocket after termination, or the plain captured socket). */
  serve(socket: Duplex, conn: MediatedConnection): void;
  /** Stops node:http's deadline timer (the sockets themselves are the proxy's to close). */
  close(): void;
}

export interface H1FrontOptions {
  /** Idle keep-alive connections are closed after this long. */
  keepAliveMs: number;
  /** Socket inactivity limit; above the upstream timeout, so a long upstream wait does not trip it. */
  idleTimeoutMs: number;
  /** A request head must be complete this long after its first byte (or after the connection's start): else 408. */
  headerTimeoutMs: number;
  /** A request body pausing longer than this between bytes gets 408 and the connection is closed. */
  bodyTimeoutMs: number;
  /** The current policy (for the provider's error shape in refusals); undefined before the first one. */
  state(): PolicyState | undefined;
  /** Telemetry's record of a request refused here (audit log, span); absent when telemetry is off. */
  refused?(r: Refusal): void;
}

export function createH1Front(mediator: Pick<Mediator, 'handle' | 'checkContinue'>, opts: H1FrontOptions): H1Front {
  // maxHeaderSize: node's default (16 KiB) answered a 17 KiB head with 400; the proxy's limit is the same 64 KiB
  // as the peek's. maxHeadersCount: node silently drops fields past it, so it sits above the limit and the
  // check below refuses what is over.
  // headersTimeout: the socket idle timeout alone let a slowloris trickling one header byte at a time hold a
  // connection for good. requestTimeout (a bound on the whole upload) stays off: a stalled body is told from a
  // slow one by the pause between bytes (bodyTimeoutMs), not by the upload's length.
  const http = createHttpServer({
    noDelay: true,
    keepAliveTimeout: opts.keepAliveMs,
    maxHeaderSize: MAX_HEADER_BYTES,
    headersTimeout: opts.headerTimeoutMs,
    requestTimeout: 0,
    connectionsCheckingInterval: Math.min(1_000, Math.max(20, Math.floor(opts.headerTimeoutMs / 10))),
  });
  // node:http checks those deadlines on a timer it starts when the server begins listening; this one never
  // listens (sockets are handed to it), so without this the header timeout would never be enforced.
  http.emit('listening');
  http.timeout = opts.idleTimeoutMs;
  http.maxHeadersCount = HARD_HEADER_FIELDS;
  const connOf = new WeakMap<Duplex, MediatedConnection>();

  /** A refusal in the provider's error shape when the connection's host is an AI host of the policy. */
  const providerError = (conn: MediatedConnection | undefined, p: HeadProblem): { body: string; contentType: string } | undefined => {
    const adapter = conn && opts.state()?.matchHost(conn.host);
    if (!adapter) return undefined;
    const kind = p.status === 431 || p.status === 413 ? 'too_large' : p.status === 408 ? 'timeout' : 'bad_request';
    const e = adapter.errorResponse(kind, p.status, p.message);
    return { body: e.body, contentType: e.headers['content-type'] ?? 'application/json' };
  };
  const refuse = (socket: Duplex, p: HeadProblem): void => {
    const e = providerError(connOf.get(socket), p);
    answerAndDiscard(socket, e ? rawResponse(p.status, e.body, e.contentType) : rawResponse(p.status, p.message));
  };
  const admit = (req: IncomingMessage, res: ServerResponse): MediatedConnection | undefined => {
    const conn = connOf.get(req.socket);
    if (!conn) {
      res.destroy();
      return undefined;
    }
    const problem = checkHead(req.rawHeaders);
    if (problem) {
      const e = providerError(conn, problem);
      const body = e?.body ?? `${problem.message}\n`;
      res.shouldKeepAlive = false;
      res.writeHead(problem.status, { 'content-type': e?.contentType ?? 'text/plain', 'content-length': Buffer.byteLength(body) });
      res.end(body);
      opts.refused?.({ host: conn.host, status: problem.status, method: req.method, path: req.url, headers: req.headers, resBytes: Buffer.byteLength(body) });
      req.resume(); // read and drop the body: closing with it unread would reset the connection
      return undefined;
    }
    watchBody(req, opts.bodyTimeoutMs, () => stalled(conn, req, res), res);
    return conn;
  };
  /** A body that stopped arriving: 408 if nothing was answered yet, and the connection closed either way. */
  const stalled = (conn: MediatedConnection, req: IncomingMessage, res: ServerResponse): void => {
    const socket = req.socket;
    if (res.headersSent || res.writableEnded) {
      socket.destroy();
      return;
    }
    const p: HeadProblem = { status: 408, message: `aigress: the request body paused for more than ${opts.bodyTimeoutMs} ms` };
    const e = providerError(conn, p);
    const body = e?.body ?? `${p.message}\n`;
    res.shouldKeepAlive = false;
    res.writeHead(408, { 'content-type': e?.contentType ?? 'text/plain', 'content-length': Buffer.byteLength(body) });
    res.end(body, () => socket.destroy());
  };

  http.on('request', (req, res) => {
    const conn = admit(req, res);
    if (conn) mediator.handle(req, res, conn);
  });
  http.on('checkContinue', (req, res) => {
    const conn = admit(req, res);
    if (conn) mediator.checkContinue(req, res, conn);
  });
  http.on('connect', (_req, socket: Duplex) => {
    answerAndDiscard(socket, rawResponse(405, ''));
  });
  http.on('upgrade', (_req, socket: Duplex) => {
    // WebSocket and other upgrades cannot be inspected yet: refuse rather than forward blind.
    const conn = connOf.get(socket);
    const adapter = conn && opts.state()?.matchHost(conn.host);
    const e = adapter?.errorResponse('policy', 501, 'aigress: protocol upgrades (WebSocket) to AI providers are not supported');
    answerAndDiscard(socket, rawResponse(501, e?.body ?? '', e?.headers['content-type'] ?? 'text/plain'));
  });
    // node:http may report the same broken socket again as more bytes arrive; the first answer stands, and the
  // socket is closed by answerAndDiscard's timer, not by a later report.
  const answered = new WeakSet<Duplex>();
  http.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    if (answered.has(socket)) return;
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    answered.add(socket);
    // a response already under way on this socket (a pipelined head that broke during a stream): an answer
    // written now would land inside that response's body, so the connection is only closed
    if ((socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent) {
      socket.destroy();
      return;
    }
    const problem = parseProblem(err as NodeJS.ErrnoException & { reason?: unknown });
    const conn = connOf.get(socket);
    if (conn) opts.refused?.({ host: conn.host, status: problem.status });
    refuse(socket, problem);
  });

  return {
    serve(socket, conn) {
      connOf.set(socket, conn);
      http.emit('connection', socket);
    },
    close() {
      // node:http clears its connections-checking interval in close(); the server never listened, so the
      // callback's ERR_SERVER_NOT_RUNNING says nothing
      http.close(() => undefined);
    },
  };
}
