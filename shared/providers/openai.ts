import { openAiStyleError } from './errors.js';
import { openAiCodec } from './openai-content.js';
import { IncludeUsageStripper, injectIncludeUsage } from './openai-stream-usage.js';
import { isObject, modelField, bodyJson, splitPath, type JsonObject } from './request.js';
import type { Operation, ProviderAdapter, RequestDescription, Usage } from './types.js';
import { count, compactUsage, tryJson, type UsageHandlers } from './usage.js';

// OpenAI. Regions: eu.api.openai.com is OpenAI's European data-residency endpoint; api.openai.com is taken as
// the US, OpenAI's default data residency (projects without a residency setting store and process data there).

const OPERATIONS: Record<string, Operation> = {
  '/v1/chat/completions': 'chat',
  '/v1/responses': 'responses',
  '/v1/embeddings': 'embeddings',
  '/v1/completions': 'text_completion',
  '/v1/responses/input_tokens': 'count_tokens',
};

/**
 * Operation, model and streaming of an OpenAI-shaped request (OpenAI, Azure OpenAI's v1 API, Mistral, the
 * OpenAI-compatible endpoints of Gemini and Vertex AI): the model is the body's `model`, on any path.
 */
export function describeOpenAiBody(json: JsonObject | undefined, operation: Operation): Pick<RequestDescription, 'operation' | 'model' | 'stream'> {
  const model = modelField(json?.model);
  return {
    operation,
    ...(model !== undefined && { model }),
    stream: json?.stream === true,
  };
}

/**
 * Usage in OpenAI's two vocabularies: Chat Completions / Embeddings (`prompt_tokens`, `completion_tokens`, …)
 * and Responses (`input_tokens`, `output_tokens`, …). Cached and reasoning tokens are parts of input and output.
 */
export function openAiUsage(u: JsonObject): Usage | undefined {
  const inDetails = isObject(u.prompt_tokens_details) ? u.prompt_tokens_details : isObject(u.input_tokens_details) ? u.input_tokens_details : undefined;
  const outDetails = isObject(u.completion_tokens_details)
    ? u.completion_tokens_details
    : isObject(u.output_tokens_details)
      ? u.output_tokens_details
      : undefined;
  return compactUsage({
    input: count(u.prompt_tokens) ?? count(u.input_tokens),
    output: count(u.completion_tokens) ?? count(u.output_tokens),
    cachedInput: count(inDetails?.cached_tokens),
    reasoning: count(outDetails?.reasoning_tokens),
  });
}

const USAGE_OBJECT = /"usage"\s*:\s*\{/;

/**
 * Reads OpenAI-shaped usage: from a JSON body, or from the SSE events of a stream — chat chunks carry `usage`
 * (the last one wins), Responses events carry it in `response.usage` (`response.completed`, `.incomplete`,
 * `.failed`). Events without a usage object are not parsed once the model is known.
 */
export function openAiUsageHandlers(): UsageHandlers {
  let usage: Usage | undefined;
  let model: string | undefined;
  const take = (doc: unknown): void => {
    if (!isObject(doc)) return;
    const r = isObject(doc.response) ? doc.response : doc;
    if (isObject(r.usage)) usage = openAiUsage(r.usage) ?? usage;
    if (typeof r.model === 'string' && r.model !== '') model = r.model;
  };
  return {
    sse(ev) {
      if (model !== undefined && !USAGE_OBJECT.test(ev.data)) return;
      take(tryJson(ev.data));
    },
    json: take,
    result: () => ({ ...(usage && { usage }), ...(model !== undefined && { responseModel: model }) }),
  };
}

export const openai: ProviderAdapter = {
  id: 'openai',
  otelName: 'openai',
  matchHost: (host) => host === 'api.openai.com' || host === 'eu.api.openai.com',
  errorResponse: openAiStyleError,
  describe(req) {
    const { pathname } = splitPath(req.path);
    const operation = OPERATIONS[pathname.replace(/\/$/, '')] ?? 'unknown';
    const eu = req.host === 'eu.api.openai.com';
    return {
      ...describeOpenAiBody(bodyJson(req), operation),
      region: eu ? 'eu' : 'us',
      reach: [eu ? 'eu' : 'us'],
      regionNote: eu ? 'OpenAI EU data-residency endpoint' : "OpenAI's default data residency (US)",
    };
  },
  usageHandlers: () => openAiUsageHandlers(),
  codec: (d) => openAiCodec(d.operation),
  streamUsage: {
    inject: (req, d) => {
      if (d.operation !== 'chat' || !d.stream) return undefined;
      const json = bodyJson(req);
      return json ? injectIncludeUsage(req.body, json) : undefined;
    },
    createStripper: () => new IncludeUsageStripper(),
  },
};
