import { anthropicMessagesCodec } from './anthropic-content.js';
import { jsonError } from './errors.js';
import { isObject, modelField, bodyJson, splitPath, type JsonObject } from './request.js';
import type { DenyKind, ErrorResponse, Operation, ProviderAdapter, Usage } from './types.js';
import { compactUsage, count, tryJson, type UsageHandlers } from './usage.js';

// Anthropic's Messages API (api.anthropic.com). The wire format is also spoken by Claude on Vertex AI
// (rawPredict/streamRawPredict) and on Bedrock (InvokeModel), so its usage readers are exported here.
// Region: api.anthropic.com is taken as the US, where Anthropic's first-party API serves by default.

const OPERATIONS: Record<string, Operation> = {
  '/v1/messages': 'chat',
  '/v1/messages/count_tokens': 'count_tokens',
  '/v1/complete': 'text_completion',
};

export function anthropicError(kind: DenyKind, status: number, message: string): ErrorResponse {
  const type = {
    policy: 'permission_error',
    region: 'permission_error',
    budget: 'rate_limit_error',
    too_large: 'request_too_large',
    bad_gateway: 'api_error',
    timeout: 'api_error',
    misdirected: 'invalid_request_error',
    bad_request: 'invalid_request_error',
    unavailable: 'overloaded_error',
  }[kind];
  return jsonError(status, kind, { type: 'error', error: { type, message } });
}

/** Raw usage fields as Anthropic reports them; `input_tokens` excludes cache reads and writes. */
interface RawUsage {
  input?: number;
  cacheRead?: number;
  cacheWrite?: number;
  output?: number;
  thinking?: number;
}

function mergeRaw(into: RawUsage, u: JsonObject): void {
  const set = (k: keyof RawUsage, v: unknown): void => {
    const n = count(v);
    if (n !== undefined) into[k] = n;
  };
  set('input', u.input_tokens);
  set('cacheRead', u.cache_read_input_tokens);
  set('cacheWrite', u.cache_creation_input_tokens);
  set('output', u.output_tokens);
  if (isObject(u.output_tokens_details)) set('thinking', u.output_tokens_details.thinking_tokens);
}

function toUsage(r: RawUsage): Usage | undefined {
  return compactUsage({
    input: r.input === undefined ? undefined : r.input + (r.cacheRead ?? 0) + (r.cacheWrite ?? 0),
    output: r.output,
    cachedInput: r.cacheRead,
    cacheWriteInput: r.cacheWrite,
    reasoning: r.thinking,
  });
}

/** Usage of a Messages API `usage` object, in the common shape (input includes cache reads and writes). */
export function anthropicUsage(u: JsonObject): Usage | undefined {
  const raw: RawUsage = {};
  mergeRaw(raw, u);
  return toUsage(raw);
}

/**
 * Follows a Messages stream: `message_start` carries input and cache counts (and a first output count),
 * `message_delta` carries cumulative counts — output always, the others when they changed (server tools).
 * Later values replace earlier ones.
 */
export class AnthropicStreamUsage {
  private readonly raw: RawUsage = {};
  private model: string | undefined;

  onEvent(doc: unknown): void {
    if (!isObject(doc)) return;
    if (doc.type === 'message_start' && isObject(doc.message)) {
      if (isObject(doc.message.usage)) mergeRaw(this.raw, doc.message.usage);
      if (typeof doc.message.model === 'string') this.model = doc.message.model;
    } else if (doc.type === 'message_delta' && isObject(doc.usage)) mergeRaw(this.raw, doc.usage);
  }

  usage(): Usage | undefined {
    return toUsage(this.raw);
  }

  responseModel(): string | undefined {
    return this.model;
  }
}

/** Usage handlers for Messages API responses: a JSON message, or an SSE stream of message events. */
export function anthropicUsageHandlers(): UsageHandlers {
  const stream = new AnthropicStreamUsage();
  let json: { usage?: Usage; model?: string } = {};
  return {
    sse(ev) {
      if (ev.event === 'message_start' || ev.event === 'message_delta' || (ev.event === 'message' && ev.data.includes('"usage"'))) {
        stream.onEvent(tryJson(ev.data));
      }
    },
    json(doc) {
      if (!isObject(doc)) return;
      json = {
        ...(isObject(doc.usage) && { usage: anthropicUsage(doc.usage) }),
        ...(typeof doc.model === 'string' && { model: doc.model }),
      };
    },
    result() {
      const usage = json.usage ?? stream.usage();
      const model = json.model ?? stream.responseModel();
      return { ...(usage && { usage }), ...(model !== undefined && { responseModel: model }) };
    },
  };
}

export const anthropic: ProviderAdapter = {
  id: 'anthropic',
  otelName: 'anthropic',
  matchHost: (host) => host === 'api.anthropic.com',
  errorResponse: anthropicError,
  describe(req) {
    const { pathname } = splitPath(req.path);
    const json = bodyJson(req);
    const model = modelField(json?.model);
    return {
      operation: OPERATIONS[pathname.replace(/\/$/, '')] ?? 'unknown',
      ...(model !== undefined && { model }),
      stream: json?.stream === true,
      ...(json !== undefined && { json }),
      region: 'us',
      reach: ['us'],
      regionNote: "Anthropic's first-party API (US)",
    };
  },
  usageHandlers: () => anthropicUsageHandlers(),
  codec: (d) => (d.operation === 'unknown' ? undefined : anthropicMessagesCodec),
};
