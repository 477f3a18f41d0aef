import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import {
  constants as h2,
  createServer as createH2Server,
  type Http2ServerRequest,
  type Http2ServerResponse,
  type Http2Session,
  type ServerHttp2Session,
  type ServerHttp2Stream,
} from 'node:http2';
import type { TLSSocket } from 'node:tls';
import { errorMessage } from '../../shared/errors.js';
import type { Logger } from '../../shared/log.js';
import { checkHead, H2_CONTROL_BUDGET, H2_RESET_BUDGET, HARD_HEADER_BYTES, HARD_HEADER_FIELDS, MAX_CONCURRENT_STREAMS, RateGuard, watchBody } from './limits.js';
import type { Refusal } from '../telemetry/refusal.js';
import type { AppRequest, AppResponse, MediatedConnection, Mediator, PolicyState } from './mediate.js';

// HTTP/2 from the app (ALPN h2 on terminated TLS). The TLS socket is handed to one never-listening http2
// server; each stream comes out of its compatibility API and is wrapped so the Mediator sees the same
// request/response surface as for HTTP/1.1. Upstream stays HTTP/1.1 (undici), so the headers are translated
// at this edge: pseudo-headers in, connection-specific fields out.

/**
 * Fields HTTP/2 forbids (RFC 9113 §8.2.2); node:http2 throws on them. Upstream responses are HTTP/1.1, so
 * most are already gone (headers.ts drops hop-by-hop ones); this also covers `http2-settings` and `te`.
 */
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'http2-settings', 'te']);

/**
 * An HTTP/2 request's header list as HTTP/1.1 would carry it: no pseudo-headers; `host` is the `:authority`
 * (RFC 9113 §8.3.1: a client sends that instead of Host; when both are present `:authority` wins and the
 * Host field is dropped, so what is checked against the SNI is what is forwarded); split `cookie` fields
 * joined with "; " (RFC 9113 §8.2.3) because HTTP/1.1 allows only one.
 */
export function h1RequestHeaders(raw: readonly string[]): { headers: IncomingHttpHeaders; rawHeaders: string[] } {
  let authority: string | undefined;
  let host: string | undefined;
  const cookies: string[] = [];
  const rest: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    const value = raw[i + 1]!;
    if (name === ':authority') authority = value;
    else if (name.startsWith(':')) continue;
    else if (name === 'host') host ??= value;
    else if (name === 'cookie') cookies.push(value);
    else rest.push(name, value);
  }
  const rawHeaders: string[] = [];
  const target = authority ?? host;
  if (target !== undefined) rawHeaders.push('host', target);
  rawHeaders.push(...rest);
  if (cookies.length > 0) rawHeaders.push('cookie', cookies.join('; '));
  return { headers: headersObject(rawHeaders), rawHeaders };
}

/** node:http's folding of a raw list: set-cookie an array, other repeats joined with ", ". */
function headersObject(raw: readonly string[]): IncomingHttpHeaders {
  const out: Record<string, string | string[]> = {};
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    const prev = out[name];
    if (name === 'set-cookie') out[name] = Array.isArray(prev) ? [...prev, value] : [value];
    else out[name] = prev === undefined ? value : `${String(prev)}, ${value}`;
  }
  return out as IncomingHttpHeaders;
}

/**
 * Response headers for node:http2: minus the fields HTTP/2 forbids, names lower-cased, a repeated field (a raw
 * list's set-cookie, vary…) as an array so each value goes out as its own field.
 */
export function h2ResponseHeaders(headers: OutgoingHttpHeaders | readonly string[]): OutgoingHttpHeaders {
  const out: Record<string, string | string[]> = {};
  const add = (name: string, value: string): void => {
    const k = name.toLowerCase();
    if (CONNECTION_SPECIFIC.has(k)) return;
    const prev = out[k];
    out[k] = prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [prev, value];
  };
  if (isRawList(headers)) {
    for (let i = 0; i < headers.length; i += 2) add(headers[i]!, headers[i + 1]!);
  } else {
    for (const [k, v] of Object.entries(headers)) {
      if (v === undefined) continue;
      if (Array.isArray(v)) for (const x of v) add(k, x);
      else add(k, String(v));
    }
  }
  return out;
}

function isRawList(h: OutgoingHttpHeaders | readonly string[]): h is readonly string[] {
  return Array.isArray(h);
}

/** One HTTP/2 request stream, seen as the Mediator reads a request. */
class H2Request implements AppRequest {
  readonly headers: IncomingHttpHeaders;
  readonly rawHeaders: string[];
  readonly httpVersion = '2.0';

  private watching = false;

  /** `watch` starts the body timeout; called when the body is first read. */
  constructor(
    private readonly req: Http2ServerRequest,
    private readonly watch: () => void = () => undefined,
  ) {
    const view = h1RequestHeaders(req.rawHeaders);
    this.headers = view.headers;
    this.rawHeaders = view.rawHeaders;
  }

  get method(): string {
    return this.req.method;
  }

  get url(): string {
    return this.req.url;
  }

  on(event: 'data', listener: (chunk: Buffer) => void): this {
    if (!this.watching) {
      this.watching = true;
      this.watch();
    }
    this.req.on(event, listener);
    return this;
  }

  once(event: 'end', listener: () => void): this {
    this.req.once(event, listener);
    return this;
  }

  listenerCount(event: 'data'): number {
    return this.req.listenerCount(event);
  }

  /**
   * Stop the upload (the Mediator does this after answering 413): RST_STREAM NO_ERROR once the response is
   * complete is RFC 9113 §8.1's way to say so; the rest of the session is untouched.
   */
  destroy(): void {
    const stream = this.req.stream;
    if (!stream.destroyed) stream.close(stream.writableEnded ? h2.NGHTTP2_NO_ERROR : h2.NGHTTP2_CANCEL);
  }
}

/** One HTTP/2 response stream, seen as the Mediator writes a response. */
class H2Response implements AppResponse {
  /** HTTP/2 has no per-response keep-alive; drain ends a session with GOAWAY (MediatedConnection.goAway). */
  shouldKeepAlive = true;
  private readonly stream: ServerHttp2Stream;

  constructor(private readonly res: Http2ServerResponse) {
    this.stream = res.stream;
  }

  get headersSent(): boolean {
    return this.res.headersSent;
  }

  get destroyed(): boolean {
    return this.stream.destroyed;
  }

  get writableFinished(): boolean {
    return this.res.writableFinished;
  }

  writeHead(status: number, statusMessage: string, headers: OutgoingHttpHeaders | string[]): this;
  writeHead(status: number, headers: OutgoingHttpHeaders | string[]): this;
  writeHead(status: number, a: string | OutgoingHttpHeaders | string[], b?: OutgoingHttpHeaders | string[]): this {
    // HTTP/2 has no reason phrase; passing one makes node warn on every response.
    const headers = typeof a === 'string' ? (b ?? {}) : a;
    this.res.writeHead(status, h2ResponseHeaders(headers));
    return this;
  }

  write(chunk: Buffer): boolean {
    return this.res.write(chunk);
  }

  end(chunk?: Buffer | string): void {
    if (chunk === undefined) this.res.end();
    else this.res.end(chunk);
  }

  /** writeHead already sent the head (node:http2 does not wait for the first chunk); this covers no writeHead. */
  flushHeaders(): void {
    if (!this.res.headersSent) this.res.writeHead(this.res.statusCode);
  }

  writeContinue(): void {
    this.res.writeContinue();
  }

  /** Cut a response mid-way (provider stream broke): RST_STREAM INTERNAL_ERROR, as an h2 provider would. */
  destroy(): void {
    if (!this.stream.destroyed) this.stream.close(h2.NGHTTP2_INTERNAL_ERROR);
  }

  once(event: 'close' | 'drain' | 'finish', listener: () => void): this {
    this.res.once(event, listener);
    return this;
  }
}

export interface H2Front {
  /** Serve an HTTP/2 session on a TLS socket whose handshake chose ALPN h2. */
  serve(socket: TLSSocket, conn: MediatedConnection): void;
}

export interface H2FrontOptions {
  /** A session without any frame for this long is closed gracefully (GOAWAY; open streams still finish). */
  idleTimeoutMs: number;
  /** A request's header block (HEADERS and its CONTINUATION frames) must be complete this long after it began. */
  headerTimeoutMs: number;
  /** A request body pausing longer than this between bytes gets 408 (or its stream reset, once answered). */
  bodyTimeoutMs: number;
  log: Logger;
  /** The current policy (for the provider's error shape in refusals). */
  state?(): PolicyState | undefined;
  /** Telemetry's record of a request refused here (audit log, span); absent when telemetry is off. */
  refused?(r: Refusal): void;
}

export function createH2Front(mediator: Pick<Mediator, 'handle' | 'checkContinue'>, opts: H2FrontOptions): H2Front {
  // SETTINGS_MAX_CONCURRENT_STREAMS: without it a client may open streams without bound (10,000 on one session
  // were accepted, each holding memory and, against a slow provider, an upstream connection). The header ceilings
  // sit above limits.ts's limits so that a request just over them is parsed and answered 431 rather than reset.
  const server = createH2Server({
    settings: { maxConcurrentStreams: MAX_CONCURRENT_STREAMS, maxHeaderListSize: HARD_HEADER_BYTES },
    maxHeaderListPairs: HARD_HEADER_FIELDS,
  });
  const connOf = new WeakMap<Http2Session, MediatedConnection>();
  // The server creates the session synchronously inside emit('connection'); this carries the connection over.
  let handing: MediatedConnection | undefined;

  // The header timeout. node:http2 emits 'stream' only once a header block is complete (HEADERS and every
  // CONTINUATION) and has no event for one beginning; the session idle timeout restarts on every frame, so a
  // client trickling a block (CONTINUATION frames, or one frame byte by byte) held its session for as long as it
  // kept trickling. But nghttp2's last processed stream id (session.state.lastProcStreamID) moves to a new
  // stream's id as soon as its HEADERS frame begins: above the last stream the session emitted, a request head is
  // in progress (nothing else can be: a header block must be followed by its own CONTINUATIONs). One interval
  // checks every open session, as node:http's connectionsCheckingInterval does for HTTP/1.1, so a head is cut
  // between headerTimeoutMs and that plus two ticks after it began. A block nghttp2 or node refused (stream
  // reset, never emitted) also reads as in progress until the session's next stream: a session that then idles
  // is ended at the header timeout rather than the idle timeout, which costs its client a reconnect at most.
  // (Trailers trickled after a body are the body timeout's: the stream's 'end' waits for them.)
  const heads = new Map<ServerHttp2Session, { conn: MediatedConnection; emitted: number; pending: number; since: number }>();
  const tickMs = Math.min(1_000, Math.max(20, Math.floor(opts.headerTimeoutMs / 10)));
  let checking: NodeJS.Timeout | undefined;
  const stopIfIdle = (): void => {
    if (heads.size === 0 && checking) {
      clearInterval(checking);
      checking = undefined;
    }
  };
  const checkHeads = (): void => {
    const now = performance.now();
    for (const [session, h] of heads) {
      const begun = session.destroyed ? 0 : (session.state.lastProcStreamID ?? 0);
      if (begun <= h.emitted) h.pending = 0;
      else if (begun !== h.pending) {
        h.pending = begun;
        h.since = now;
      } else if (now - h.since >= opts.headerTimeoutMs) {
        heads.delete(session);
        opts.log.warn({ host: h.conn.host, headerTimeoutMs: opts.headerTimeoutMs }, 'http2 session ended: a request header block did not complete in time');
        opts.refused?.({ host: h.conn.host, status: 408 });
        // The last stream id is the last one emitted: the client may retry the unfinished one elsewhere.
        session.goaway(h2.NGHTTP2_ENHANCE_YOUR_CALM, h.emitted);
        session.destroy();
      }
    }
    stopIfIdle();
  };
  const watchHeads = (session: ServerHttp2Session, conn: MediatedConnection): void => {
    const h = { conn, emitted: 0, pending: 0, since: 0 };
    heads.set(session, h);
    session.on('stream', (stream: ServerHttp2Stream) => {
      h.emitted = Math.max(h.emitted, stream.id ?? 0);
    });
    session.once('close', () => {
      heads.delete(session);
      stopIfIdle();
    });
    if (!checking) {
      checking = setInterval(checkHeads, tickMs);
      checking.unref();
    }
  };

  server.on('session', (session: ServerHttp2Session) => {
    const conn = handing;
    if (!conn) {
      session.destroy();
      return;
    }
    connOf.set(session, conn);
    const goAway = (): void => {
      if (!session.closed && !session.destroyed) session.close();
    };
    conn.goAway = goAway;
    session.setTimeout(opts.idleTimeoutMs, goAway);
    watchHeads(session, conn);
    // node:http2 answers every PING and SETTINGS and lets a client reset streams as fast as it opens them (it
    // sent GOAWAY on rapid reset but kept reading and discarding): a session over the budget is ended.
    // PING floods from a client that reads the ACKs were answered without end (634,000 in a minute).
    const control = new RateGuard(H2_CONTROL_BUDGET.burst, H2_CONTROL_BUDGET.perSecond);
    const resets = new RateGuard(H2_RESET_BUDGET.burst, H2_RESET_BUDGET.perSecond);
    const calm = (what: 'ping' | 'settings' | 'reset'): void => {
      if (session.destroyed) return;
      opts.log.warn({ host: conn.host, flood: what, budget: what === 'reset' ? H2_RESET_BUDGET : H2_CONTROL_BUDGET }, 'http2 session ended: frame flood');
      session.goaway(h2.NGHTTP2_ENHANCE_YOUR_CALM);
      session.destroy();
    };
    session.on('ping', () => control.take() || calm('ping'));
    session.on('remoteSettings', () => control.take() || calm('settings'));
    session.on('stream', (stream: ServerHttp2Stream) => stream.once('aborted', () => resets.take() || calm('reset')));
  });
  server.on('sessionError', (err: Error, session: ServerHttp2Session) => {
    opts.log.debug({ host: connOf.get(session)?.host, err: errorMessage(err) }, 'http2 session error');
  });

  const route = (req: Http2ServerRequest, res: Http2ServerResponse, expectContinue: boolean): void => {
    const session = req.stream.session;
    const conn = session && connOf.get(session);
    if (!conn) {
      req.stream.close(h2.NGHTTP2_REFUSED_STREAM);
      return;
    }
    const problem = checkHead(req.rawHeaders);
    if (problem) {
      const adapter = opts.state?.()?.matchHost(conn.host);
      const e = adapter?.errorResponse(problem.status === 431 ? 'too_large' : 'misdirected', problem.status, problem.message);
      res.writeHead(problem.status, { 'content-type': e?.headers['content-type'] ?? 'text/plain' });
      const body = e?.body ?? `${problem.message}\n`;
      res.end(body); // node:http2 then closes the stream (NO_ERROR); the session lives on
      opts.refused?.({ host: conn.host, status: problem.status, method: req.method, path: req.url, headers: req.headers, resBytes: Buffer.byteLength(body) });
      return;
    }
    // PINGs or other streams keep a session from idling out: a stalled upload is watched per stream, from when
    // the Mediator starts reading it. (A request refused unread is left to node:http2, which closes its stream
    // once answered only as long as nothing has read the body.)
    const watch = (): void =>
      watchBody(req, opts.bodyTimeoutMs, () => {
        if (res.headersSent || res.writableEnded) {
          if (!req.stream.destroyed) req.stream.close(h2.NGHTTP2_CANCEL);
          return;
        }
        const message = `aigress: the request body paused for more than ${opts.bodyTimeoutMs} ms`;
        const e = opts.state?.()?.matchHost(conn.host)?.errorResponse('timeout', 408, message);
        res.writeHead(408, { 'content-type': e?.headers['content-type'] ?? 'text/plain' });
        // The app's half is still open: RST_STREAM NO_ERROR once the answer is out (RFC 9113 §8.1).
        res.end(e?.body ?? `${message}\n`, () => {
          if (!req.stream.destroyed) req.stream.close(h2.NGHTTP2_NO_ERROR);
        });
      }, res);
    const appReq = new H2Request(req, watch);
    const appRes = new H2Response(res);
    if (expectContinue) mediator.checkContinue(appReq, appRes, conn);
    else mediator.handle(appReq, appRes, conn);
  };
  server.on('request', (req, res) => route(req, res, false));
  server.on('checkContinue', (req, res) => route(req, res, true));

  return {
    serve(socket, conn) {
      handing = conn;
      try {
        server.emit('connection', socket);
      } finally {
        handing = undefined;
      }
    },
  };
}
