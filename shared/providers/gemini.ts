import { googleStyleError } from './errors.js';
import { geminiCodec } from './gemini-content.js';
import { openAiCodec } from './openai-content.js';
import type { ContentCodec } from './content.js';
import { describeOpenAiBody, openAiUsageHandlers } from './openai.js';
import { decodeSegment, isObject, bodyJson, splitPath, type JsonObject } from './request.js';
import { GLOBAL } from '../regions.js';
import type { Operation, ProviderAdapter, RequestDescription, Usage } from './types.js';
import { compactUsage, count, tryJson, type UsageHandlers } from './usage.js';

// The Gemini Developer API (generativelanguage.googleapis.com). Google gives it no data-residency guarantee and
// may serve it from any region, so its reach is `global`. The GenerateContent wire format is shared with Gemini
// on Vertex AI; its readers are exported here.

/** Operation of a Google `:method` suffix (`models/gemini-2.0-flash:streamGenerateContent`). */
export function googleMethodOperation(method: string): { operation: Operation; stream: boolean } {
  switch (method) {
    case 'generateContent':
      return { operation: 'generate_content', stream: false };
    case 'streamGenerateContent':
      return { operation: 'generate_content', stream: true };
    case 'countTokens':
    case 'computeTokens':
      return { operation: 'count_tokens', stream: false };
    case 'embedContent':
    case 'batchEmbedContents':
      return { operation: 'embeddings', stream: false };
    default:
      return { operation: 'unknown', stream: false };
  }
}

/**
 * `usageMetadata` in the common shape. Google serialises protobuf to JSON, which leaves zero counts out, so a
 * missing count inside a present usageMetadata is zero. `promptTokenCount` already includes cached content;
 * thoughts are output (billed as such) and not part of `candidatesTokenCount`; tool-use prompts are input.
 */
export function geminiUsage(m: JsonObject): Usage | undefined {
  const prompt = count(m.promptTokenCount);
  const toolUse = count(m.toolUsePromptTokenCount);
  const candidates = count(m.candidatesTokenCount);
  const thoughts = count(m.thoughtsTokenCount);
  const total = count(m.totalTokenCount);
  if (prompt === undefined && candidates === undefined && thoughts === undefined && total === undefined) return undefined;
  const input = (prompt ?? 0) + (toolUse ?? 0);
  let output: number | undefined;
  if (candidates !== undefined || thoughts !== undefined) output = (candidates ?? 0) + (thoughts ?? 0);
  else if (total !== undefined) output = Math.max(0, total - input);
  return compactUsage({ input, output, cachedInput: count(m.cachedContentTokenCount), reasoning: thoughts });
}

/**
 * GenerateContent responses: one JSON object, a JSON array of them (`streamGenerateContent` without
 * `alt=sse`), or SSE events each holding one. Every chunk of a stream repeats the running usage; the last wins.
 */
export function geminiUsageHandlers(): UsageHandlers {
  let usage: Usage | undefined;
  let model: string | undefined;
  const take = (doc: unknown): void => {
    if (Array.isArray(doc)) {
      for (const d of doc) take(d);
      return;
    }
    if (!isObject(doc)) return;
    if (isObject(doc.usageMetadata)) usage = geminiUsage(doc.usageMetadata) ?? usage;
    if (typeof doc.modelVersion === 'string' && doc.modelVersion !== '') model = doc.modelVersion;
  };
  return {
    sse(ev) {
      if (ev.data.includes('"usageMetadata"') || model === undefined) take(tryJson(ev.data));
    },
    json: take,
    result: () => ({ ...(usage && { usage }), ...(model !== undefined && { responseModel: model }) }),
  };
}

/** GenerateContent and countTokens speak the GenerateContent format; other methods have no codec. */
export function googleCodec(operation: Operation): ContentCodec | undefined {
  return operation === 'generate_content' || operation === 'count_tokens' ? geminiCodec : undefined;
}

const MODEL_METHOD = /^\/v1(?:beta|alpha)?\/(models|tunedModels)\/([^/:]+):([A-Za-z]+)$/;
const OPENAI_COMPAT = /^\/v1beta\/openai\/(chat\/completions|embeddings)\/?$/;

const WHERE = { region: GLOBAL, reach: [GLOBAL], regionNote: 'the Gemini Developer API may serve from any region' };

export const gemini: ProviderAdapter = {
  id: 'gemini',
  otelName: 'gcp.gemini',
  matchHost: (host) => host === 'generativelanguage.googleapis.com',
  errorResponse: googleStyleError,
  describe(req): RequestDescription {
    const { pathname } = splitPath(req.path);
    const compat = OPENAI_COMPAT.exec(pathname);
    if (compat) {
      const op = compat[1] === 'embeddings' ? 'embeddings' : 'chat';
      return { ...describeOpenAiBody(bodyJson(req), op), api: 'openai', ...WHERE };
    }
    const m = MODEL_METHOD.exec(pathname);
    if (!m) return { operation: 'unknown', stream: false, ...WHERE };
    const name = decodeSegment(m[2]!);
    const model = name === undefined ? undefined : m[1] === 'tunedModels' ? `tunedModels/${name}` : name;
    return { ...googleMethodOperation(m[3]!), action: m[3]!, ...(model && { model }), ...WHERE };
  },
  usageHandlers(d) {
    return d.api === 'openai' ? openAiUsageHandlers() : geminiUsageHandlers();
  },
  codec: (d) => (d.api === 'openai' ? openAiCodec(d.operation) : googleCodec(d.operation)),
};
