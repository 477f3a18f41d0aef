import type { IncomingHttpHeaders } from 'node:http';
import type { ProviderId } from '../policy/types.js';
import type { ContentCodec } from './content.js';
import type { UsageHandlers } from './usage.js';

export type { ProviderId };

/** Why the proxy itself answers instead of the provider; maps to the provider's own error vocabulary. */
export type DenyKind =
  | 'policy' // 403: model or provider not allowed, filter blocked
  | 'region' // 451: region not allowed
  | 'budget' // 429: token budget spent
  | 'too_large' // 413: request body over the proxy's limit
  | 'bad_gateway' // 502: upstream unreachable, reset, TLS failure
  | 'timeout' // 504: upstream did not answer in time
  | 'misdirected' // 421: Host header disagrees with SNI
  | 'bad_request' // 400: a body the policy must inspect cannot be read (encoding, UTF-8, JSON)
  | 'unavailable'; // 503: the proxy cannot enforce policy right now (fail closed)

export interface ErrorResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * What a request does, as one bounded label. The names follow OpenTelemetry's `gen_ai.operation.name` where
 * one fits (chat, embeddings, text_completion, generate_content); `responses` is OpenAI's Responses API,
 * `count_tokens` a token-counting call that consumes nothing, `unknown` any other path on a provider's host
 * (still proxied and counted, never dropped).
 */
export const OPERATIONS = [
  'chat',
  'responses',
  'embeddings',
  'text_completion',
  'generate_content',
  'count_tokens',
  'unknown',
] as const;
export type Operation = (typeof OPERATIONS)[number];

/** The parts of a request an adapter reads. */
export interface ProviderRequest {
  /** Lower-case host name, no port. */
  readonly host: string;
  readonly method: string;
  /** Path plus query string, as sent. */
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
  /**
   * The body's JSON object view, when the caller already holds one (the proxy parses each body once and shares
   * it); adapters read the body through `bodyJson`, which falls back to parsing `body`.
   */
  readonly json?: () => Readonly<Record<string, unknown>> | undefined;
}

/** Policy data some adapters need to describe a request. */
export interface DescribeOptions {
  /** Azure OpenAI resource name (lower-case) → region. */
  readonly azureResources?: Readonly<Record<string, string>>;
}

export interface RequestDescription {
  readonly operation: Operation;
  /** The model as the provider names it (routing prefixes such as Bedrock's `eu.` removed); absent when not told. */
  readonly model?: string;
  /** Other names of the same model that model rules also match, e.g. `claude-…` for Bedrock's `anthropic.claude-…`. */
  readonly modelAliases?: readonly string[];
  /** Where the endpoint serves the call: an exact region, a region group, `global`; absent when it cannot be told. */
  readonly region?: string;
  /**
   * Every place (exact region, group or `global`) the call may be processed in; a policy must allow all of them.
   * Absent or empty when the region cannot be told.
   */
  readonly reach?: readonly string[];
  /** Why the region is what it is, or why it is unknown; for denial messages and logs. */
  readonly regionNote?: string;
  /** The response streams (SSE, AWS event stream, or a streamed JSON array). */
  readonly stream: boolean;
  /**
   * Which wire format the call speaks, for providers that host several (`openai` for the OpenAI-compatible
   * endpoints of Gemini and Vertex AI, `anthropic` for Claude on Vertex AI and Bedrock); absent for the native one.
   */
  readonly api?: 'openai' | 'anthropic';
  /** The provider's own name for the call when the path carries one (Bedrock `converse-stream`, Google `countTokens`). */
  readonly action?: string;
}

export interface ResponseMeta {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
}

/**
 * Token counts in one shape for every provider. `input` counts every prompt token, including those read from or
 * written to a cache; `cachedInput` and `cacheWriteInput` are parts of it. `output` counts every generated token,
 * including reasoning; `reasoning` is part of it. A field the provider did not report is absent, never zero.
 */
export interface Usage {
  input?: number;
  output?: number;
  cachedInput?: number;
  cacheWriteInput?: number;
  reasoning?: number;
}

export interface UsageResult {
  usage?: Usage;
  /** The model that answered, when the response says (Azure deployments hide it in the request). */
  responseModel?: string;
  /** The body could not be read (not JSON, over the size limit, an encoding the reader cannot undo). */
  unreadable?: boolean;
}

/** Reads usage from one response body, fed its bytes in order in any chunking. Never throws. */
export interface UsageReader {
  push(chunk: Buffer): void;
  /** Called once, after the last chunk (also when the stream broke). */
  finish(): UsageResult;
}

/** Rewrites a byte stream chunk by chunk; bytes it holds back (an unfinished event) come out of `flush`. */
export interface ChunkTransform {
  push(chunk: Buffer): Buffer;
  flush(): Buffer;
}

/**
 * For providers that report streamed usage only when asked (OpenAI's `stream_options.include_usage`): ask
 * upstream, and take back out what asking added, so the client sees exactly the stream it asked for.
 */
export interface StreamUsageOptIn {
  /** The request body with usage asked for, or undefined when there is nothing to change. */
  inject(req: ProviderRequest, d: RequestDescription): Buffer | undefined;
  /** Removes, from the response stream, what `inject` made upstream add. */
  createStripper(): ChunkTransform;
}

/**
 * One AI provider. Each lives in its own file next to this one; adding a provider touches that file, the
 * registry list in index.ts and a fixture folder, nothing else. Wire formats several providers share (Anthropic
 * messages on Vertex AI and Bedrock, Gemini on Vertex AI) are exported by the adapter that owns the format.
 */
export interface ProviderAdapter {
  readonly id: ProviderId;
  /** OpenTelemetry's `gen_ai.provider.name` for this provider. */
  readonly otelName: string;
  /** True when `host` (lower-case, no port) is one of this provider's API hosts. */
  matchHost(host: string): boolean;
  /** A response in the provider's own error JSON shape, so SDKs surface a readable message. */
  errorResponse(kind: DenyKind, status: number, message: string): ErrorResponse;
  /** Operation, model, region and streaming of a request. Pure; never throws on hostile input. */
  describe(req: ProviderRequest, opts: DescribeOptions): RequestDescription;
  /**
   * What usage looks like in one response to a request `describe` described: handlers for its SSE events, AWS
   * event-stream messages or JSON document (the proxy frames the body once and feeds them; `usageReader` in
   * usage.ts frames a byte stream for them).
   */
  usageHandlers(d: RequestDescription, res: ResponseMeta): UsageHandlers;
  /**
   * The content codec for the wire format of a request `describe` described: the texts the provider reads and
   * the app receives. Undefined for calls whose format has none (listing models, files…).
   */
  codec?(d: RequestDescription): ContentCodec | undefined;
  readonly streamUsage?: StreamUsageOptIn;
}
