import type { IncomingHttpHeaders } from 'node:http';
import type { Registry } from 'prom-client';
import type { Logger } from '../../shared/log.js';
import type { EgressPolicy } from '../../shared/policy/types.js';
import type { DenyKind, ProviderAdapter, RequestDescription, Usage } from '../../shared/providers/types.js';
import type { BodyDocument } from './body.js';
import type { HeaderList } from './header-list.js';
import type { StreamEvent } from './framing.js';
import type { BudgetServices } from '../budgets/service.js';
import type { CredentialSource } from '../credentials/source.js';
import type { TelemetryServices } from '../telemetry/types.js';

// The seam between the proxy (sockets, TLS, upstream) and policy (decisions over one exchange). The proxy hands
// the runner (runner.ts) one Exchange per request; the runner runs the processors phase by phase, each under its
// failure mode and deadline, and returns the upstream request, final to the byte, or a denial. On the way back
// the runner frames the response once (framing.ts) and hands events to the processors that asked for them.
// Processors never touch sockets. docs/pipeline.md explains how to add one.

/** Who is calling: filled from the downward API env of the proxy container; fields absent when unknown. */
export interface PodIdentity {
  namespace?: string;
  pod?: string;
  serviceAccount?: string;
  /** The owning workload as kind/name in kubectl's lower-case spelling (`deployment/chat`, …), from owner references at injection (AIGRESS_WORKLOAD). */
  workload?: string;
}

/**
 * The phases, in the order they run. The upstream request is final (method, path, headers, body and its
 * content-length) before `sign` runs, so a signer sees exactly what goes on the wire.
 * - describe: what the call is (operation, model, region); never denies.
 * - admit: regions, models, budget reservation: allow or deny, no changes.
 * - transform: filters, usage injection: may change the body, path and headers.
 * - credentials: managed credentials replace the app's.
 * - sign: signatures over the final request (SigV4); may only add or set headers.
 */
export const PHASES = ['describe', 'admit', 'transform', 'credentials', 'sign'] as const;
export type Phase = (typeof PHASES)[number];

/** `closed`: a processor that throws or times out stops the request (503, nothing leaves). `open`: it is skipped. */
export type FailureMode = 'closed' | 'open';

/** The request as it will be sent upstream; processors edit it in place (the body through its document). */
export interface UpstreamRequest {
  /** Normalised host name (lower case, no trailing dot): the TLS name and the pool key upstream. */
  readonly host: string;
  method: string;
  /** Path plus query string, as it will be sent. */
  path: string;
  /** The headers to send, hop-by-hop ones already removed; content-length is set by the runner. */
  readonly headers: HeaderList;
  readonly body: BodyDocument;
}

/** Typed results processors hand each other (never logged wholesale). */
export interface ExchangeResults {
  /** Token usage the provider reported, written by metering at the end of the response. */
  usage?: Usage;
  /** Why usage is missing, when it is (`unreadable`, `not_reported`, `incomplete`). */
  usageMissing?: string;
  /** The model that answered, when the response says. */
  responseModel?: string;
  /** Estimated cost of the call in USD, from the price table. */
  costUsd?: number;
  /** Input tokens estimated before forwarding (budgets' reservation), when a processor counted them. */
  estimatedInputTokens?: number;
}

/**
 * What goes into the request's log line: small scalars only, by name. Never credentials, and never prompt text
 * except `promptText`, which only a pii filter's documented `logText` option writes, with its redactions applied.
 */
export type LogFacts = Record<string, string | number | boolean | undefined>;

/** One processor's record in the log line and audit: what it did, never the values it saw. */
export interface ProcessorAction {
  readonly processor: string;
  readonly type: string;
  readonly phase: Phase | 'response';
  /** `deny`, `would-deny` (audit mode), `redact`, `log`, `rewrite`, `failed-open`, … */
  readonly action: string;
  /** What was found, by kind (`email: 2`), never the matches themselves. */
  readonly found?: Readonly<Record<string, number>>;
  readonly reason?: string;
}

/** One request/response passing the proxy. */
export interface Exchange {
  readonly adapter: ProviderAdapter;
  readonly request: UpstreamRequest;
  /** The headers as the app sent them (read-only; processors read the app's intent here, edit `request`). */
  readonly appHeaders: IncomingHttpHeaders;
  readonly policy: EgressPolicy;
  readonly identity: PodIdentity;
  /** process.hrtime.bigint() when the request was fully read. */
  readonly startedAt: bigint;
  /** Fires when the client goes away or the exchange's deadline passes: stop work, send nothing. */
  readonly signal: AbortSignal;
  /** What the provider adapter made of the request; set by the describe phase (an unknown call until then). */
  described: RequestDescription;
  readonly results: ExchangeResults;
  /** Facts for the log line only. */
  readonly facts: LogFacts;
  /** What processors did, in order, for the log line and the audit record. */
  readonly actions: ProcessorAction[];
  /**
   * A private slot for `owner` (a processor), created by `init` on first use. Never logged: redaction maps and
   * reservations live here.
   */
  slot<T>(owner: object, init: () => T): T;
}

/** A processor's answer for one phase. Changes are made in place on `ex.request`. */
export type Verdict =
  | { readonly action: 'continue' }
  /** Answer the app in the provider's error shape; nothing leaves the pod. */
  | {
      readonly action: 'deny';
      readonly kind: DenyKind;
      readonly status: number;
      readonly message: string;
      /** Bounded label for aigress_denials_total and the log line (`model_denied`, `budget_exhausted`, …). */
      readonly reason: string;
      readonly headers?: Readonly<Record<string, string>>;
    };

export interface ResponseHead {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
}

/** How a response is framed: by its content type. */
export type Framing = 'sse' | 'eventstream' | 'json' | 'other';

/**
 * One processor's part in one response. Every hook is optional; a processor asks for only what it needs and the
 * runner picks the cheapest plan that serves them all:
 * - only `bytes`: the passive path (bytes relayed as they come, content-length kept);
 * - `event` on a stream (SSE or AWS event stream): framed once, events through the transforms in order;
 * - `body` on a non-stream: the head waits until the whole body is read and decided (bounded).
 */
export interface ResponseHooks {
  /** Upstream bytes as they arrive, before any transform. Read-only, synchronous, never changes what is sent. */
  bytes?(chunk: Buffer): void;
  /** Upstream stream events as decoded, before any transform. Read-only, synchronous (metering reads usage here). */
  observe?(ev: StreamEvent): void;
  /**
   * What the app receives, after every response transform: on a stream each event as it is sent (never one a
   * transform dropped or that followed a block), on a non-stream the body bytes as sent (the decided body of a
   * held response; nothing when the app got a denial instead). Read-only, synchronous; telemetry's content
   * capture reads the completion here so that response-phase redactions and blocks apply to it.
   */
  delivered?(chunk: Buffer): void;
  deliveredEvent?(ev: StreamEvent): void;
  /**
   * One event of a stream. Return the events to send in its place: `[ev]` (unchanged or edited), `[]` (held back
   * or dropped), or several (released earlier ones first). While a returned promise is pending the upstream is
   * paused. Throwing (or rejecting) follows the processor's failure mode.
   */
  event?(ev: StreamEvent): EventResult | Promise<EventResult>;
  /** Upstream ended normally: events still held, to send last. */
  flush?(): EventResult | Promise<EventResult>;
  /**
   * The whole body of a non-streamed response (a JSON answer a filter may rewrite or block). Edit `body` in
   * place, or deny: the app then gets the denial instead of the provider's answer.
   */
  body?(body: BodyDocument, head: ResponseHead): Verdict | Promise<Verdict>;
}

/** A denial (the `deny` variant of Verdict). */
export type Deny = Extract<Verdict, { action: 'deny' }>;

/**
 * What an event hook returns: the events to send in place of the one it got, or a denial, which ends the
 * stream the way the provider ends a failed one (its SSE error event, or an AWS event-stream exception frame);
 * nothing more reaches the app after it.
 */
export type EventResult = readonly StreamEvent[] | Deny;

/** How the exchange ended, for `onEnd`. */
export interface EndInfo {
  /** An event stream stopped being decodable (its events could not all be read). */
  readonly framingFailed: boolean;
  /** The response was relayed whole (false when the upstream broke, the client left, or nothing was sent). */
  readonly complete: boolean;
  /** Nothing was sent upstream (denied, failed closed, client gone before dispatch). */
  readonly forwarded: boolean;
  /** HTTP status the app got (0 when none). */
  readonly status: number;
  /** What the proxy's transport knows of the exchange (absent when a test drives the runner alone). */
  readonly transport?: TransportFacts;
}

/** Transport facts for telemetry and the audit record, filled by the proxy (mediate.ts) when the exchange ends. */
export interface TransportFacts {
  /** The request's outcome as the proxy counts it (`allow`, `deny`, `would-deny`, `error`). */
  readonly decision: string;
  /** process.hrtime.bigint() when the request's head arrived. */
  readonly receivedAt: bigint;
  /** Body bytes the app sent, and response bytes the app got. */
  readonly reqBytes: number;
  readonly resBytes: number;
  /** Why the provider could not be reached or its response broke (`refused`, `truncated (reset)`, …). */
  readonly upstreamError?: string;
}

/** One step of the pipeline. A processor is one file (plus its tests); see docs/pipeline.md. */
export interface Processor {
  /** Unique within the pipeline (`regions`, `pii-0`, a filter's `name`): metric label and log key. */
  readonly name: string;
  /** The processor type (`regions`, `pii`, `budget`, …). */
  readonly type: string;
  readonly phase: Phase;
  /** Default `closed`. */
  readonly failureMode?: FailureMode;
  /** Deadline for each of this processor's calls (request, response event, body); default 5 s. */
  readonly timeoutMs?: number;
  /** Audit mode: a denial is recorded as `would-deny` and the request goes on. */
  readonly audit?: boolean;
  /** The request phase. Return `continue` or a denial; edits go to `ex.request`. */
  onRequest?(ex: Exchange): Verdict | Promise<Verdict>;
  /** Called once per upstream response; return hooks to take part in it. */
  onResponse?(ex: Exchange, head: ResponseHead, framing: Framing): ResponseHooks | undefined;
  /** Once per exchange that reached this processor's phase, after the response ended or the request stopped. */
  onEnd?(ex: Exchange, end: EndInfo): void | Promise<void>;
  /** Frees what this processor holds for its policy (called when the pipeline is replaced). */
  close?(): void | Promise<void>;
}

/**
 * Things that live as long as the proxy process, not one policy: created once at start and handed to every
 * pipeline build (a budget store's Redis connection, a credential source, a guard HTTP client).
 */
export interface PipelineServices {
  /** The proxy's metrics registry (served on the admin port); processors register their metrics here once. */
  readonly registry: Registry;
  readonly log: Logger;
  /** Milliseconds since the epoch; tests pass a fake. */
  readonly now: () => number;
  /** Budget stores (local, Redis), created by the proxy; a pipeline built without them counts locally only. */
  readonly budgets?: BudgetServices;
  /** Managed credentials (--credentials-dir, or the control plane); absent when the proxy has no source. */
  readonly credentials?: CredentialSource;
  // Services of later capabilities are added here as optional, typed fields (a budget store, a credential
  // source, a guard HTTP client), created once by the proxy and closed when it stops.
  /** OTLP export, the audit log and content capture (sidecar/telemetry/); absent when none is enabled. */
  readonly telemetry?: TelemetryServices;
  /** The largest request body the proxy buffers (--max-body-bytes): a compressed body decodes to at most this. */
  readonly maxBodyBytes?: number;
}

/** The processors for one policy; replaced whole on a policy change and then closed. */
export interface Pipeline {
  readonly processors: readonly Processor[];
  /** Frees what this build holds (timers, per-policy clients); in-flight exchanges keep their processors. */
  close(): Promise<void>;
}
