import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { Duplex } from 'node:stream';
import { errorMessage } from '../../shared/errors.js';
import type { Logger } from '../../shared/log.js';
import type { EgressPolicy } from '../../shared/policy/types.js';
import type { DenyKind, ProviderAdapter } from '../../shared/providers/types.js';
import type {
  Exchange,
  Pipeline,
  PodIdentity,
  ProxiedRequest,
  ResponseObserver,
} from '../pipeline/types.js';
import {
  clientResponseHeaders,
  hasContentLength,
  originForm,
  pathForLog,
  upstreamRequestHeaders,
} from './headers.js';
import type { Decision, ProxyMetrics } from './metrics.js';
import { absoluteTargetAuthority, parseAuthority } from './peek.js';
import { classifyUpstreamError, type Dispatcher, type Upstreams } from './upstream.js';

// One AI request through the proxy: check it belongs on this connection, buffer its body, run the request
// processors, forward it, stream the response back through the response processors, log and count it once.

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
  once(event: 'close' | 'drain', listener: () => void): unknown;
}

/** Compiled once per policy, swapped whole when the policy changes. */
export interface PolicyState {
  readonly policy: EgressPolicy;
  readonly matchHost: (host: string) => ProviderAdapter | undefined;
  readonly pipeline: Pipeline;
}

export interface MediatorDeps {
  state(): PolicyState;
  upstreams: Upstreams;
  metrics: ProxyMetrics;
  log: Logger;
  identity: PodIdentity;
  maxBodyBytes: number;
  draining(): boolean;
}

/** Discarded body bytes after a 413 before the connection is cut: enough for the app to read the answer. */
const DISCARD_LIMIT = 64 * 1024 * 1024;

interface Outcome {
  decision: Decision;
  code: number;
  reqBytes: number;
  resBytes: number;
  upstreamError?: string;
}

/** Mutable view of an Exchange: a rewrite replaces `request` so later processors see the new body. */
interface LiveExchange extends Exchange {
  request: ProxiedRequest;
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
    const out: Outcome = { decision: 'error', code: 0, reqBytes: 0, resBytes: 0 };
    let ex: LiveExchange | undefined;
    const adapter = state.matchHost(conn.host);
    conn.inflight++;
    conn.requests++;
    res.once('close', () => {
      conn.inflight--;
      this.finish(conn, req, res, adapter, ex, out, t0);
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
      if (over) {
        if (size > this.deps.maxBodyBytes + DISCARD_LIMIT) req.destroy();
        return;
      }
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
      ex = {
        request: { host: conn.host, adapter, method: req.method ?? 'GET', path, headers: req.headers, body },
        policy: state.policy,
        identity: this.deps.identity,
        startedAt: process.hrtime.bigint(),
        facts: {},
      };
      const hasBody = size > 0 || declared !== undefined || req.headers['transfer-encoding'] !== undefined;
      this.run(ex, state.pipeline, req, res, conn, hasBody, out).catch((err: unknown) => {
        this.deps.log.error({ err: errorMessage(err) }, 'request handling failed');
        if (res.headersSent) res.destroy();
        else this.refuse(res, adapter, out, 'unavailable', 503, 'aigress: the proxy could not handle this request');
        out.decision = 'error';
      });
    });
  }

  private async run(
    ex: LiveExchange,
    pipeline: Pipeline,
    req: AppRequest,
    res: AppResponse,
    conn: MediatedConnection,
    hasBody: boolean,
    out: Outcome,
  ): Promise<void> {
    const adapter = ex.request.adapter;
    let changes: Record<string, string | null> | undefined;
    let bodyChanged = false;
    for (const p of pipeline.request) {
      let verdict;
      try {
        const v = p.onRequest(ex);
        verdict = v instanceof Promise ? await v : v;
      } catch (err) {
        // A processor that cannot decide must not wave the request through: fail closed.
        this.deps.log.error({ processor: p.name, err: errorMessage(err) }, 'request processor failed');
        this.refuse(res, adapter, out, 'unavailable', 503, 'aigress: policy could not be enforced for this request');
        out.decision = 'error';
        return;
      }
      if (res.destroyed) return;
      if (verdict.action === 'deny') {
        this.refuse(res, adapter, out, verdict.kind, verdict.status, verdict.message, verdict.headers);
        return;
      }
      if (verdict.action === 'rewrite') {
        bodyChanged = true;
        let headers = ex.request.headers;
        if (verdict.headers) {
          changes = { ...changes, ...verdict.headers };
          headers = { ...headers };
          for (const [k, v] of Object.entries(verdict.headers)) {
            if (v === null) delete headers[k.toLowerCase()];
            else headers[k.toLowerCase()] = v;
          }
        }
        ex.request = { ...ex.request, body: verdict.body, headers };
      }
    }
    const body = ex.request.body;
    const raw = req.rawHeaders;
    const headers = upstreamRequestHeaders(raw, {
      host: conn.tls ? undefined : ex.request.host, // plain HTTP named port 80; the provider is on 443
      changes,
      bodyLength: hasBody || bodyChanged || hasContentLength(raw) ? body.length : undefined,
    });
    const pool = this.deps.upstreams.pool(ex.request.host);
    const dispatcher = pool instanceof Promise ? await pool : pool;
    if (res.destroyed) return;
    const relay = new ResponseRelay(ex, pipeline, res, out, this.deps);
    try {
      dispatcher.dispatch(
        { origin: `https://${ex.request.host}`, method: ex.request.method, path: ex.request.path, headers, body: body.length > 0 || hasBody ? body : null },
        relay,
      );
    } catch (err) {
      // undici refuses some requests outright (e.g. a header value it will not send).
      this.refuse(res, adapter, out, 'bad_gateway', 502, `aigress: request could not be forwarded: ${errorMessage(err)}`);
      out.decision = 'error';
    }
  }

  private tooLarge(req: AppRequest, res: AppResponse, adapter: ProviderAdapter, out: Outcome): void {
    this.deps.metrics.bodyTooLarge.inc();
    const limit = this.deps.maxBodyBytes;
    this.refuse(res, adapter, out, 'too_large', 413, `aigress: request body is larger than the proxy limit of ${limit} bytes`);
    // Read and drop the rest, so the app gets to read the 413 instead of a reset; cut off past a bound.
    if (req.listenerCount('data') === 0) {
      let discarded = 0;
      req.on('data', (c: Buffer) => {
        discarded += c.length;
        if (discarded > DISCARD_LIMIT) req.destroy();
      });
    }
  }

  private refuse(
    res: AppResponse,
    adapter: ProviderAdapter,
    out: Outcome,
    kind: DenyKind,
    status: number,
    message: string,
    extra?: Record<string, string>,
  ): void {
    out.decision = 'deny';
    out.code = status;
    if (res.headersSent || res.destroyed) return;
    const e = adapter.errorResponse(kind, status, message);
    const body = Buffer.from(e.body);
    out.resBytes = body.length;
    res.writeHead(e.status, { ...e.headers, ...extra, 'content-length': String(body.length) });
    res.end(body);
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
  ): void {
    if (out.decision === 'allow' && !res.writableFinished) out.decision = 'error'; // client went away mid-response
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
      },
      'ai request',
    );
  }
}

type UndiciHeaders = Parameters<NonNullable<Dispatcher.DispatchHandler['onResponseStart']>>[2];

/** Streams one provider response to the app as it arrives, through the response processors. */
class ResponseRelay implements Dispatcher.DispatchHandler {
  private controller?: Dispatcher.DispatchController;
  private observers: ResponseObserver[] = [];
  private chunkObservers = false;
  private clientGone = false;
  private ended = false;
  private waitingDrain = false;

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

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.clientGone) controller.abort(new Error('client closed the connection'));
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    status: number,
    headers: UndiciHeaders,
    statusMessage?: string,
  ): void {
    if (status < 200) return; // 1xx informational: the app gets the final response only
    this.out.code = status;
    for (const p of this.pipeline.response) {
      try {
        const o = p.onResponse(this.ex, { status, headers: headers as IncomingHttpHeaders });
        if (o) this.observers.push(o);
      } catch (err) {
        this.deps.log.error({ processor: p.name, err: errorMessage(err) }, 'response processor failed');
      }
    }
    this.chunkObservers = this.observers.some((o) => o.onChunk !== undefined || o.flush !== undefined);
    const mayResize = this.observers.some((o) => !o.passive && (o.onChunk !== undefined || o.flush !== undefined));
    const raw = (controller.rawHeaders as (Buffer | string)[] | null | undefined) ?? [];
    const out = clientResponseHeaders(raw, mayResize);
    if (this.deps.draining()) this.res.shouldKeepAlive = false;
    if (statusMessage) this.res.writeHead(status, statusMessage, out);
    else this.res.writeHead(status, out);
    // A streamed (unsized) response: let the app see the head now, not with the first event.
    if (!hasContentLength(out)) this.res.flushHeaders();
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    const data = this.chunkObservers ? this.throughObservers(chunk, 0) : chunk;
    if (data.length === 0) return;
    this.out.resBytes += data.length;
    if (!this.res.write(data) && !this.waitingDrain) {
      this.waitingDrain = true;
      controller.pause();
      this.res.once('drain', () => {
        this.waitingDrain = false;
        controller.resume();
      });
    }
  }

  onResponseEnd(): void {
    this.ended = true;
    this.out.decision = 'allow';
    // Bytes an observer held back (an event whose end never came) go out last, through the later observers.
    for (let i = 0; i < this.observers.length; i++) {
      const o = this.observers[i]!;
      if (!o.flush) continue;
      let held: Buffer | undefined;
      try {
        held = o.flush();
      } catch (err) {
        this.deps.log.error({ err: errorMessage(err) }, 'response observer failed');
      }
      if (!held || held.length === 0) continue;
      const data = this.throughObservers(held, i + 1);
      this.out.resBytes += data.length;
      if (data.length > 0) this.res.write(data);
    }
    this.endObservers(true);
    this.res.end();
  }

  /** Runs a chunk through the observers from index `from` on; an observer that throws leaves it unchanged. */
  private throughObservers(chunk: Buffer, from: number): Buffer {
    let data = chunk;
    for (let i = from; i < this.observers.length; i++) {
      const o = this.observers[i]!;
      if (!o.onChunk) continue;
      try {
        data = o.onChunk(data) ?? data;
      } catch (err) {
        this.deps.log.error({ err: errorMessage(err) }, 'response observer failed');
      }
      if (data.length === 0) break;
    }
    return data;
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    this.ended = true;
    this.endObservers(false);
    if (this.clientGone) return;
    const failure = classifyUpstreamError(err);
    const provider = this.ex.request.adapter.id;
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
      failure.kind === 'timeout'
        ? `aigress: ${this.ex.request.host} did not answer in time`
        : `aigress: cannot reach ${this.ex.request.host} (${failure.reason})`;
    const e = this.ex.request.adapter.errorResponse(failure.kind, failure.status, message);
    const body = Buffer.from(e.body);
    this.out.resBytes = body.length;
    this.res.writeHead(e.status, { ...e.headers, 'content-length': String(body.length) });
    this.res.end(body);
  }

  private endObservers(complete: boolean): void {
    for (const o of this.observers) {
      try {
        o.onEnd?.(complete);
      } catch (err) {
        this.deps.log.error({ err: errorMessage(err) }, 'response observer failed');
      }
    }
    this.observers = [];
  }
}
