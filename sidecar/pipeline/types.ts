import type { IncomingHttpHeaders } from 'node:http';
import type { EgressPolicy } from '../../shared/policy/types.js';
import type { DenyKind, ProviderAdapter, RequestDescription } from '../../shared/providers/types.js';

// The seam between the proxy (sockets, TLS, upstream) and policy (pure decisions over parsed requests).
// The proxy builds one Exchange per request, runs the request processors in order, forwards, and lets the
// response processors observe the response as it streams. Processors never touch sockets.

/** Who is calling: filled from the downward API env of the proxy container; fields absent when unknown. */
export interface PodIdentity {
  namespace?: string;
  pod?: string;
  serviceAccount?: string;
  workload?: string;
}

export interface ProxiedRequest {
  /** Lower-case host name the app asked for (SNI, or Host for plain HTTP). */
  readonly host: string;
  readonly adapter: ProviderAdapter;
  readonly method: string;
  /** Path plus query string, as sent. */
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  /** The whole request body (buffered up to the proxy's limit). Forwarded as is unless a processor rewrites it. */
  readonly body: Buffer;
}

/** One request/response passing the proxy. Processors may record facts here for later processors and logs. */
export interface Exchange {
  readonly request: ProxiedRequest;
  readonly policy: EgressPolicy;
  readonly identity: PodIdentity;
  /** process.hrtime.bigint() when the request was fully read. */
  readonly startedAt: bigint;
  /** Facts found by processors (operation, model, region, usage…); shown in the request's log line. */
  readonly facts: Record<string, string | number | boolean | undefined>;
  /**
   * What the provider adapter made of the request (operation, model, region, parsed body), set by the first
   * processor (`describe`) for the later ones and the response side. Never logged: it holds the parsed body.
   */
  described?: RequestDescription;
}

export type RequestVerdict =
  | { action: 'continue' }
  /** Answer the app directly in the provider's error shape; nothing leaves the pod. */
  | { action: 'deny'; kind: DenyKind; status: number; message: string; headers?: Record<string, string> }
  /** Forward a changed body (and header changes; `null` removes a header). content-length is recomputed. */
  | { action: 'rewrite'; body: Buffer; headers?: Record<string, string | null> };

export interface RequestProcessor {
  readonly name: string;
  onRequest(ex: Exchange): RequestVerdict | Promise<RequestVerdict>;
}

export interface ResponseHead {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
}

/**
 * Sees one response as it streams. `onChunk` is synchronous so that no event waits on a processor; it may
 * return a replacement for the chunk (an empty Buffer drops it).
 */
export interface ResponseObserver {
  onChunk?(chunk: Buffer): Buffer | undefined;
  /**
   * Called once when the upstream body has ended normally, before `onEnd`: bytes the observer still holds (an
   * event whose end never came) to send to the client last, passed through later observers' `onChunk`.
   */
  flush?(): Buffer | undefined;
  /** `complete` is false when the upstream stream broke or the client went away. */
  onEnd?(complete: boolean): void;
  /**
   * Set when `onChunk` only reads (never returns a replacement) and `flush` returns nothing: the proxy then keeps
   * the provider's content-length. Otherwise a sized response goes to the app chunked, since its size may change.
   */
  readonly passive?: boolean;
}

export interface ResponseProcessor {
  readonly name: string;
  /** Called once per upstream response; return undefined to not look at this one. */
  onResponse(ex: Exchange, head: ResponseHead): ResponseObserver | undefined;
}

export interface Pipeline {
  readonly request: readonly RequestProcessor[];
  readonly response: readonly ResponseProcessor[];
}
