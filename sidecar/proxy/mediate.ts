import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { Duplex } from 'node:stream';
import { errorMessage } from '../../shared/errors.js';
import type { Logger } from '../../shared/log.js';
import type { EgressPolicy } from '../../shared/policy/types.js';
import type { DenyKind, ProviderAdapter } from '../../shared/providers/types.js';
import { ExchangeAbort, exchangeAborted, newExchange, type PipelineRunner, type ResponseDriver, type ResponseSink } from '../pipeline/runner.js';
import type { Deny, Exchange, Pipeline, PodIdentity } from '../pipeline/types.js';
import { clientResponseHeaders, hasContentLength, originForm, pathForLog, upstreamRequestHeaders } from './headers.js';
import type { Refusal } from '../telemetry/refusal.js';
import type { Decision, ProxyMetrics } from './metrics.js';
import { absoluteTargetAuthority, parseAuthority } from './peek.js';
import { classifyUpstreamError, type Dispatcher, type Upstreams } from './upstream.js';

// One AI request through the proxy, transport only: check it belongs on this connection, buffer its body (with
// the body limit and 100-continue), hand it to the pipeline runner, dispatch what the runner made final, relay
// the response through the runner's response plan, log and count it once. Policy lives in sidecar/pipeline/.

/** What the proxy knows about a captured connection carrying AI requests. */
export interface MediatedConnection {
  /** Host routed on: the SNI, or the Host of the first plain-HTTP request. */
  readonly host: string;
  readonly tls: boolean;
  /** The socket the HTTP server reads (the TLSSocket when terminated). */
  readonly io: Duplex;
  inflight: number;
  /** Requests seen so far on this connection. */
  requests: number;
  /** HTTP/2 (h2.ts): GOAWAY — no new streams, the session closes once its open ones end. */
  goAway?: () => void;
}

/** What the Mediator reads of a request: node:http's IncomingMessage, or an HTTP/2 stream (h2.ts). */
export interface AppRequest {
  readonly method?: string | undefined;
  readonly url?: string | undefined;
  readonly headers: IncomingHttpHeaders;
  readonly rawHeaders: string[];
  on(event: 'data', listener: (chunk: Buffer) => void): unknown;
  once(event: 'end', listener: () => void): unknown;
  listenerCount(event: 'data'): number;
  /** Abort the upload (HTTP/1.1: the connection; HTTP/2: the stream). */
  destroy(): unknown;
}

/** What the Mediator writes of a response: node:http's ServerResponse, or an HTTP/2 stream (h2.ts). */
export interface AppResponse {
  readonly headersSent: boolean;
  readonly destroyed: boolean;
  readonly writableFinished: boolean;
  shouldKeepAlive: boolean;
  writeHead(status: number, statusMessage: string, headers: OutgoingHttpHeaders | string[]): unknown;
  writeHead(status: number, headers: OutgoingHttpHeaders | string[]): unknown;
  write(chunk: Buffer): boolean;
  end(chunk?: Buffer | string): unknown;
  flushHeaders(): void;
  writeContinue(): void;
  destroy(): unknown;
  once(event: 'close' | 'drain' | 'finish', listener: () => void): unknown;
}

/** Compiled once per policy, swapped whole when the policy changes. */
export interface PolicyState {
  readonly policy: EgressPolicy;
  readonly matchHost: (host: string) => ProviderAdapter | undefined;
  readonly pipeline: Pipeline;
}

export interface MediatorDeps {
  state(): PolicyState;
  runner: PipelineRunner;
  upstreams: Upstreams;
  metrics: ProxyMetrics;
  log: Logger;
  identity: PodIdentity;
  maxBodyBytes: number;
  draining(): boolean;
  /** Counts an exchange whose onEnd work is still running; drain waits for it. */
  track?(work: Promise<void>): void;
  /** Telemetry's record of a request refused before the pipeline (413, 421); absent when telemetry is off. */
  refused?(r: Refusal): void;
}

/**
 * After a 413 the rest of the upload is read and dropped for at most this long, then the connection is cut.
 * A time bound, not a byte bound: cutting at a byte count (64 MiB before) reset 100 MB uploads before the app
 * read the answer, and closing with body bytes unread sends a reset that destroys it.
 */
const DISCARD_LINGER_MS = 5_000;

interface Outcome {
  decision: Decision;
  code: number;
  reqBytes: number;
  resBytes: number;
  upstreamError?: string;
  /** The request went to the provider. */
  forwarded: boolean;
}

export class Mediator {
  constructor(private readonly deps: MediatorDeps) {}

  /** Expect: 100-continue: refuse an oversized body before the app sends it. */
  checkContinue(req: AppRequest, res: AppResponse, conn: MediatedConnection): void {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared <= this.deps.maxBodyBytes) res.writeContinue();
    this.handle(req, res, conn);
  }

  handle(req: AppRequest, res: AppResponse, conn: MediatedConnection): void {
    const t0 = process.hrtime.bigint();
    const state = this.deps.state();
    const out: Outcome = { decision: 'error', code: 0, reqBytes: 0, resBytes: 0, forwarded: false };
    let ex: Exchange | undefined;
    let relay: ResponseRelay | undefined;
    // Aborted when the response closes; its AbortSignal (and the DOMException an abort() without a reason
    // builds, whose stack capture was ~7 % of the instructions per request) only exists if a step asks for it.
    const aborter = new ExchangeAbort();
    const adapter = state.matchHost(conn.host);
    conn.inflight++;
    conn.requests++;
    res.once('close', () => {
      conn.inflight--;
      // The client is gone (or the response is done): any step still working for it stops, nothing is sent.
      aborter.abort();
      this.finish(conn, req, res, adapter, ex, out, t0, relay?.framingFailed ?? false);
      if (conn.inflight === 0 && this.deps.draining()) (conn.goAway ?? (() => conn.io.end()))();
    });
    if (this.deps.draining()) res.shouldKeepAlive = false;

    if (!adapter) {
      // The policy changed under a kept-alive connection: 421 tells the client to retry on a new one.
      this.plainMisdirected(res, conn.host, out);
      return;
    }
    let path = req.url ?? '/';
    if (!path.startsWith('/')) {
      const authority = absoluteTargetAuthority(path);
      if (!authority || authority.host !== conn.host) {
        this.refuse(res, adapter, out, 'misdirected', 421, `aigress: request target does not belong to ${conn.host}`);
        return;
      }
      path = originForm(path);
    }
    const host = parseAuthority(req.headers.host ?? '');
    if (!host || host.host !== conn.host) {
      this.refuse(res, adapter, out, 'misdirected', 421, `aigress: Host header does not match ${conn.tls ? 'the TLS server name' : 'this connection'} (${conn.host})`);
      return;
    }
    const declared = req.headers['content-length'];
    if (declared !== undefined && Number(declared) > this.deps.maxBodyBytes) {
      this.tooLarge(req, res, adapter, out);
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (over) return; // dropped; tooLarge bounds how long
      if (size > this.deps.maxBodyBytes) {
        over = true;
        chunks.length = 0;
        this.tooLarge(req, res, adapter, out);
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => {
      if (over || res.destroyed) return;
      const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
      out.reqBytes = size;
      const hadBody = size > 0 || declared !== undefined || req.headers['transfer-encoding'] !== undefined;
      ex = newExchange({
        adapter,
        host: conn.host,
        method: req.method ?? 'GET',
        path,
        // Plain HTTP named port 80; the provider is reached on 443.
        headers: upstreamRequestHeaders(req.rawHeaders, { host: conn.tls ? undefined : conn.host }),
        appHeaders: req.headers,
        body,
        hadBody,
        policy: state.policy,
        identity: this.deps.identity,
        signal: aborter,
      });
      const live = ex;
      this.run(live, state.pipeline, res, out)
        .then((r) => (relay = r))
        .catch((err: unknown) => {
          this.deps.log.error({ err: errorMessage(err) }, 'request handling failed');
          if (res.headersSent) res.destroy();
          else this.refuse(res, adapter, out, 'unavailable', 503, 'aigress: the proxy could not handle this request');
          out.decision = 'error';
        });
    });
  }

  private async run(ex: Exchange, pipeline: Pipeline, res: AppResponse, out: Outcome): Promise<ResponseRelay | undefined> {
    const r = await this.deps.runner.request(pipeline, ex);
    if (r.kind === 'gone' || res.destroyed) return undefined; // the client left: nothing is sent anywhere
    if (r.kind === 'deny') {
      this.refuse(res, ex.adapter, out, r.deny.kind, r.deny.status, r.deny.message, r.deny.headers);
      return undefined;
    }
    const rq = ex.request;
    const pool = this.deps.upstreams.pool(rq.host);
    const dispatcher = pool instanceof Promise ? await pool : pool;
    if (res.destroyed || exchangeAborted(ex)) return undefined;
    const relay = new ResponseRelay(ex, pipeline, res, out, this.deps);
    const body = rq.body.bytes();
    try {
      out.forwarded = true;
      dispatcher.dispatch(
        { origin: `https://${rq.host}`, method: rq.method, path: rq.path, headers: rq.headers.toRaw(), body: body.length > 0 || rq.headers.has('content-length') ? body : null },
        relay,
      );
    } catch (err) {
      // undici refuses some requests outright (e.g. a header value it will not send).
      out.forwarded = false;
      this.refuse(res, ex.adapter, out, 'bad_gateway', 502, `aigress: request could not be forwarded: ${errorMessage(err)}`);
      out.decision = 'error';
    }
    return relay;
  }

  private tooLarge(req: AppRequest, res: AppResponse, adapter: ProviderAdapter, out: Outcome): void {
    this.deps.metrics.bodyTooLarge.inc();
    const limit = this.deps.maxBodyBytes;
    // node:http closes at once after the answer when the app sent `Connection: close` (or the answer says so),
    // with the upload still arriving: a reset that loses the 413 (11 of 20 uploads). Keep the connection open
    // while the rest is read and dropped; it is closed here once the body has ended, or after the linger.
    res.shouldKeepAlive = true;
    this.refuse(res, adapter, out, 'too_large', 413, `aigress: request body is larger than the proxy limit of ${limit} bytes`);
    if (req.listenerCount('data') === 0) req.on('data', () => undefined);
    const cut = setTimeout(() => req.destroy(), DISCARD_LINGER_MS);
    cut.unref();
    req.once('end', () => {
      clearTimeout(cut);
      // Everything the app sent has been read: closing now sends no reset. (HTTP/2: the stream alone ends.)
      // node:http's IncomingMessage.destroy() leaves the socket open once the body is complete: close that.
      const socket = (req as { socket?: Duplex }).socket;
      const close = (): void => void (socket ? socket.destroy() : req.destroy());
      if (res.writableFinished || res.destroyed) close();
      else res.once('finish', close);
    });
  }


  private refuse(
    res: AppResponse,
    adapter: ProviderAdapter,
    out: Outcome,
    kind: DenyKind,
    status: number,
    message: string,
    extra?: Readonly<Record<string, string>>,
  ): void {
    out.decision = 'deny';
    out.code = status;
    if (res.headersSent || res.destroyed) return;
    // A request from before the drain: tell the app the connection ends here (not a 413: tooLarge keeps it open
    // while the upload is read and dropped, and closes it itself).
    if (this.deps.draining() && kind !== 'too_large') res.shouldKeepAlive = false;
    answerInShape(res, adapter, out, kind, status, message, extra);
  }

  private plainMisdirected(res: AppResponse, host: string, out: Outcome): void {
    out.decision = 'deny';
    out.code = 421;
    const body = `aigress: ${host} is no longer intercepted by the policy; retry on a new connection\n`;
    res.shouldKeepAlive = false;
    res.writeHead(421, { 'content-type': 'text/plain', 'content-length': String(Buffer.byteLength(body)) });
    res.end(body);
  }

  private finish(
    conn: MediatedConnection,
    req: AppRequest,
    res: AppResponse,
    adapter: ProviderAdapter | undefined,
    ex: Exchange | undefined,
    out: Outcome,
    t0: bigint,
    framingFailed: boolean,
  ): void {
    if (out.decision === 'allow' && !res.writableFinished) out.decision = 'error'; // client went away mid-response
    if (ex?.facts.decision === 'deny') out.decision = 'deny'; // also a stream a response step stopped
    else if (out.decision === 'allow' && ex?.facts.wouldDeny !== undefined) out.decision = 'would-deny';
    const complete = (out.decision === 'allow' || out.decision === 'would-deny') && res.writableFinished;
    const log = (): void => this.logLine(conn, req, adapter, ex, out, t0);
    if (!ex) {
      if (out.decision === 'deny') this.deps.refused?.({ host: conn.host, status: out.code, method: req.method, path: req.url, headers: req.headers, receivedAt: t0, resBytes: out.resBytes });
      log();
      return;
    }
    // onEnd work (metering, budget settlement) runs before the log line, so the line carries its results.
    const transport = { decision: out.decision, receivedAt: t0, reqBytes: out.reqBytes, resBytes: out.resBytes, ...(out.upstreamError !== undefined && { upstreamError: out.upstreamError }) };
    const ending = this.deps.runner.end(ex, { complete, forwarded: out.forwarded, status: out.code, framingFailed, transport }).then(log, log);
    this.deps.track?.(ending);
  }

  private logLine(conn: MediatedConnection, req: AppRequest, adapter: ProviderAdapter | undefined, ex: Exchange | undefined, out: Outcome, t0: bigint): void {
    const provider = adapter?.id ?? 'unknown';
    const facts = ex?.facts ?? {};
    const operation = typeof facts.operation === 'string' ? facts.operation : 'unknown';
    const model = typeof facts.modelLabel === 'string' ? facts.modelLabel : 'unknown';
    this.deps.metrics.requests.inc({ provider, operation, model, decision: out.decision, code: String(out.code) });
    const durationMs = Number(process.hrtime.bigint() - t0) / 1e6;
    // Never the body, the query string or headers: prompts and credentials stay out of logs.
    this.deps.log.info(
      {
        host: conn.host,
        provider,
        method: req.method,
        path: pathForLog(ex?.request.path ?? req.url ?? ''),
        status: out.code,
        decision: out.decision,
        durationMs: Math.round(durationMs * 1000) / 1000,
        reqBytes: out.reqBytes,
        resBytes: out.resBytes,
        ...(out.upstreamError ? { upstreamError: out.upstreamError } : {}),
        ...(ex ? { facts: ex.facts } : {}),
        ...(ex && ex.actions.length > 0 ? { processors: ex.actions } : {}),
      },
      'ai request',
    );
  }
}

/** The proxy's own answer in the provider's error JSON shape (the head not sent yet), sized. */
function answerInShape(
  res: AppResponse,
  adapter: ProviderAdapter,
  out: Outcome,
  kind: DenyKind,
  status: number,
  message: string,
  extra?: Readonly<Record<string, string>>,
): void {
  const e = adapter.errorResponse(kind, status, message);
  const body = Buffer.from(e.body);
  out.resBytes = body.length;
  res.writeHead(e.status, { ...e.headers, ...extra, 'content-length': String(body.length) });
  res.end(body);
}

type UndiciHeaders = Parameters<NonNullable<Dispatcher.DispatchHandler['onResponseStart']>>[2];

/**
 * Streams one provider response to the app as it arrives, through the runner's plan for it: the undici handler
 * shell on one side, the ResponseSink the plan writes to on the other.
 */
class ResponseRelay implements Dispatcher.DispatchHandler, ResponseSink {
  private controller?: Dispatcher.DispatchController;
  private driver?: ResponseDriver;
  private clientGone = false;
  private ended = false;
  private status = 0;
  private statusMessage?: string;
  private raw: (Buffer | string)[] = [];
  private drainWaiters: (() => void)[] = [];
  private listening = false;
  /** The proxy itself stopped the upstream response (a block): its abort error is expected, not a failure. */
  private aborted = false;

  constructor(
    private readonly ex: Exchange,
    private readonly pipeline: Pipeline,
    private readonly res: AppResponse,
    private readonly out: Outcome,
    private readonly deps: MediatorDeps,
  ) {
    res.once('close', () => {
      if (this.ended) return;
      this.clientGone = true;
      this.controller?.abort(new Error('client closed the connection'));
    });
  }

  get framingFailed(): boolean {
    return this.driver?.framingFailed ?? false;
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.clientGone) controller.abort(new Error('client closed the connection'));
  }

  onResponseStart(controller: Dispatcher.DispatchController, status: number, headers: UndiciHeaders, statusMessage?: string): void {
    if (status < 200) return; // 1xx informational: the app gets the final response only
    this.out.code = status;
    this.status = status;
    this.statusMessage = statusMessage;
    this.raw = (controller.rawHeaders as (Buffer | string)[] | null | undefined) ?? [];
    this.driver = this.deps.runner.response(this.pipeline, this.ex, { status, headers: headers as IncomingHttpHeaders }, this);
    if (!this.driver.holdsHead) this.head(this.driver.sized);
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.driver?.data(chunk);
  }

  onResponseEnd(): void {
    this.ended = true;
    if (this.out.decision !== 'deny') this.out.decision = 'allow';
    this.driver?.end();
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    this.ended = true;
    if (this.aborted || this.clientGone || this.res.destroyed || this.res.writableFinished) return;
    const failure = classifyUpstreamError(err);
    const provider = this.ex.adapter.id;
    this.out.decision = 'error';
    if (this.res.headersSent) {
      // Mid-stream: close the connection as the provider would have; never append an error to the body.
      this.deps.metrics.upstreamErrors.inc({ provider, reason: 'truncated' });
      this.out.upstreamError = `truncated (${failure.reason})`;
      this.res.destroy();
      return;
    }
    this.deps.metrics.upstreamErrors.inc({ provider, reason: failure.reason });
    this.out.upstreamError = failure.reason;
    this.out.code = failure.status;
    const message =
      failure.kind === 'timeout' ? `aigress: ${this.ex.request.host} did not answer in time` : `aigress: cannot reach ${this.ex.request.host} (${failure.reason})`;
    answerInShape(this.res, this.ex.adapter, this.out, failure.kind, failure.status, message);
  }

  // ---- ResponseSink: what the runner's plan writes ----

  head(sized: boolean, contentLength?: number): void {
    if (this.res.headersSent || this.res.destroyed) return;
    const out = clientResponseHeaders(this.raw, !sized);
    if (!sized && contentLength !== undefined) out.push('content-length', String(contentLength));
    if (this.deps.draining()) this.res.shouldKeepAlive = false;
    if (this.statusMessage) this.res.writeHead(this.status, this.statusMessage, out);
    else this.res.writeHead(this.status, out);
    // A streamed (unsized) response: let the app see the head now, not with the first event.
    if (!hasContentLength(out)) this.res.flushHeaders();
  }

  write(chunk: Buffer): boolean {
    if (chunk.length === 0 || this.res.destroyed) return true;
    this.out.resBytes += chunk.length;
    return this.res.write(chunk);
  }

  onDrain(cb: () => void): void {
    this.drainWaiters.push(cb);
    if (this.listening) return;
    this.listening = true;
    this.res.once('drain', () => {
      this.listening = false;
      const waiters = this.drainWaiters;
      this.drainWaiters = [];
      for (const w of waiters) w();
    });
  }

  end(): void {
    if (!this.res.destroyed) this.res.end();
  }

  deny(d: Deny): void {
    this.out.decision = 'deny';
    this.out.code = d.status;
    if (this.res.headersSent || this.res.destroyed) {
      this.res.destroy();
      return;
    }
    answerInShape(this.res, this.ex.adapter, this.out, d.kind, d.status, d.message, d.headers);
  }

  destroy(): void {
    this.out.decision = 'error';
    this.res.destroy();
  }

  pauseUpstream(): void {
    this.controller?.pause();
  }

  resumeUpstream(): void {
    this.controller?.resume();
  }

  abortUpstream(): void {
    if (this.ended) return;
    this.ended = true;
    this.aborted = true;
    this.controller?.abort(new Error('aigress stopped this response'));
  }
}
