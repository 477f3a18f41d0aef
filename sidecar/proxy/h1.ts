import { createServer as createHttpServer } from 'node:http';
import type { Duplex } from 'node:stream';
import type { MediatedConnection, Mediator, PolicyState } from './mediate.js';

// HTTP/1.1 from the app (plain HTTP, or terminated TLS without ALPN h2). One node:http server that never
// listens: each captured socket is handed to it with the MediatedConnection it belongs to, and every request
// goes to the Mediator. Beside h2.ts, which does the same for HTTP/2 sessions.

export interface H1Front {
  /** Serve HTTP/1.1 on a socket (TLSSocket after termination, or the plain captured socket). */
  serve(socket: Duplex, conn: MediatedConnection): void;
}

export interface H1FrontOptions {
  /** Idle keep-alive connections are closed after this long. */
  keepAliveMs: number;
  /** Socket inactivity limit; above the upstream timeout, so a long upstream wait does not trip it. */
  idleTimeoutMs: number;
  /** The current policy (for the provider's error shape in refusals); undefined before the first one. */
  state(): PolicyState | undefined;
}

export function createH1Front(mediator: Pick<Mediator, 'handle' | 'checkContinue'>, opts: H1FrontOptions): H1Front {
  const http = createHttpServer({ noDelay: true, keepAliveTimeout: opts.keepAliveMs });
  http.timeout = opts.idleTimeoutMs;
  const connOf = new WeakMap<Duplex, MediatedConnection>();

  http.on('request', (req, res) => {
    const conn = connOf.get(req.socket);
    if (conn) mediator.handle(req, res, conn);
    else res.destroy();
  });
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
    const adapter = conn && opts.state()?.matchHost(conn.host);
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

  return {
    serve(socket, conn) {
      connOf.set(socket, conn);
      http.emit('connection', socket);
    },
  };
}
