import { anthropicUsageHandlers } from './anthropic.js';
import { googleStyleError } from './errors.js';
import { geminiUsageHandlers, googleCodec, googleMethodOperation } from './gemini.js';
import { anthropicMessagesCodec } from './anthropic-content.js';
import { openAiCodec } from './openai-content.js';
import { describeOpenAiBody, openAiUsageHandlers } from './openai.js';
import { decodeSegment, modelField, bodyJson, splitPath } from './request.js';
import { GLOBAL } from '../regions.js';
import type { Operation, ProviderAdapter, RequestDescription } from './types.js';

// Vertex AI: `{region}-aiplatform.googleapis.com` or the global `aiplatform.googleapis.com`. The region is the
// host's and/or the path's `locations/{location}` (`global`, the multi-regions `us`/`eu`, or a region); when both
// are given and differ, the call may touch both, so both are in its reach.
// Publishers: google (Gemini: generateContent, streamGenerateContent), anthropic (Claude: rawPredict,
// streamRawPredict in Anthropic's Messages format), others (rawPredict in an OpenAI-like format), and the
// OpenAI-compatible `endpoints/openapi/chat/completions`.

const HOST = /^(?:([a-z0-9-]+)-)?aiplatform\.googleapis\.com$/;
const LOCATION = /^\/v1(?:beta1)?\/projects\/[^/]+\/locations\/([^/]+)(\/.*)?$/;
const PUBLISHER_MODEL = /^(?:\/v1(?:beta1)?)?\/publishers\/([^/]+)\/models\/([^/:]+):([A-Za-z]+)$/;
const ENDPOINT_METHOD = /^\/endpoints\/([^/:]+):([A-Za-z]+)$/;
const OPENAI_COMPAT = /^\/endpoints\/openapi\/(chat\/completions|embeddings)\/?$/;

function where(hostRegion: string | undefined, location: string | undefined): Pick<RequestDescription, 'region' | 'reach' | 'regionNote'> {
  const reach = [...new Set([location, hostRegion].filter((x): x is string => x !== undefined))];
  if (reach.length === 0) reach.push(GLOBAL);
  const note = location ? `Vertex AI location "${location}"` : hostRegion ? `Vertex AI endpoint ${hostRegion}` : 'Vertex AI global endpoint';
  return { region: reach[0]!, reach, regionNote: note };
}

function rawPredictOperation(method: string): { operation: Operation; stream: boolean } {
  if (method === 'rawPredict') return { operation: 'chat', stream: false };
  if (method === 'streamRawPredict') return { operation: 'chat', stream: true };
  return { operation: 'unknown', stream: false };
}

export const vertexAi: ProviderAdapter = {
  id: 'vertex-ai',
  otelName: 'gcp.vertex_ai',
  matchHost: (host) => HOST.test(host),
  errorResponse: googleStyleError,
  describe(req): RequestDescription {
    const hostRegion = HOST.exec(req.host)?.[1];
    const { pathname } = splitPath(req.path);
    const loc = LOCATION.exec(pathname);
    const location = loc ? decodeSegment(loc[1]!) : undefined;
    const rest = loc ? (loc[2] ?? '') : pathname;
    const place = where(hostRegion, location);

    const compat = OPENAI_COMPAT.exec(rest);
    if (compat) {
      const op = compat[1] === 'embeddings' ? 'embeddings' : 'chat';
      return { ...describeOpenAiBody(bodyJson(req), op), api: 'openai', ...place };
    }
    const pm = PUBLISHER_MODEL.exec(rest);
    if (pm) {
      const publisher = pm[1]!;
      const name = decodeSegment(pm[2]!);
      const method = pm[3]!;
      if (publisher === 'google') {
        let op = googleMethodOperation(method);
        if (method === 'predict' && name?.includes('embedding')) op = { operation: 'embeddings', stream: false };
        return { ...op, action: method, ...(name && { model: name }), ...place };
      }
      if (publisher === 'anthropic') {
        // Token counting is a pseudo-model: publishers/anthropic/models/count-tokens:rawPredict.
        if (name === 'count-tokens') {
          const model = modelField(bodyJson(req)?.model);
          return { operation: 'count_tokens', stream: false, action: method, ...(model && { model }), api: 'anthropic', ...place };
        }
        return { ...rawPredictOperation(method), action: method, ...(name && { model: name }), api: 'anthropic', ...place };
      }
      // Partner models (Mistral, Llama, …) take OpenAI-like bodies on rawPredict.
      return { ...rawPredictOperation(method), action: method, ...(name && { model: `${publisher}/${name}` }), api: 'openai', ...place };
    }
    const ep = ENDPOINT_METHOD.exec(rest);
    if (ep) {
      const id = decodeSegment(ep[1]!);
      return { ...googleMethodOperation(ep[2]!), action: ep[2]!, ...(id && { model: `endpoints/${id}` }), ...place };
    }
    return { operation: 'unknown', stream: false, ...place };
  },
  usageHandlers(d) {
    return d.api === 'anthropic' ? anthropicUsageHandlers() : d.api === 'openai' ? openAiUsageHandlers() : geminiUsageHandlers();
  },
  codec(d) {
    if (d.api === 'anthropic') return d.operation === 'unknown' ? undefined : anthropicMessagesCodec;
    if (d.api === 'openai') return openAiCodec(d.operation);
    return googleCodec(d.operation);
  },
};
