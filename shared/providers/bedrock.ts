import { AnthropicStreamUsage } from './anthropic.js';
import { jsonError } from './errors.js';
import { bedrockConverseCodec, bedrockInvokeCodec, invokeFamily } from './bedrock-content.js';
import type { EventStreamMessage } from './event-stream.js';
import { decodeSegment, isObject, splitPath, type JsonObject } from './request.js';
import { GLOBAL } from '../regions.js';
import type { Operation, ProviderAdapter, RequestDescription, ResponseMeta, Usage } from './types.js';
import { compactUsage, count, header, sumPresent, tryJson, type UsageHandlers } from './usage.js';

// Amazon Bedrock runtime: `bedrock-runtime[-fips].{region}.amazonaws.com`.
//   /model/{modelId}/converse            JSON, `usage`
//   /model/{modelId}/converse-stream     AWS event stream, usage in the `metadata` event
//   /model/{modelId}/invoke              model-native JSON; usage in x-amzn-bedrock-*-token-count headers
//   /model/{modelId}/invoke-with-response-stream
//                                        event stream of `chunk` events (base64 model-native JSON); the last
//                                        carries `amazon-bedrock-invocationMetrics`
// The model ID may be a foundation model (`anthropic.claude-…`), a cross-region inference profile
// (`eu.anthropic.claude-…`) or an ARN. A profile lets Bedrock serve the call in any region of its geography, so
// its reach is that geography as well as the region called. Bedrock's `inputTokens` does not include cache reads
// and writes (as with Anthropic's own API); they are added to input here.

const HOST = /^bedrock-runtime(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com$/;
const PATH = /^\/model\/([^/]+)\/([a-z-]+)$/;

/** Cross-region inference profile prefixes → where the profile may route (AWS documentation, 2025). */
const PROFILES: Record<string, readonly string[]> = {
  us: ['us'],
  eu: ['eu'],
  apac: ['apac', 'me-central-1'], // AWS lists Middle East (UAE) among APAC profile destinations for some models
  global: [GLOBAL],
  'us-gov': ['us-gov-west-1', 'us-gov-east-1'],
  jp: ['ap-northeast-1', 'ap-northeast-3'],
  au: ['ap-southeast-2', 'ap-southeast-4'],
};

/** Model vendors as they prefix Bedrock model IDs (`anthropic.claude-…`); their prefix is dropped for aliases. */
const VENDORS = new Set([
  'amazon', 'anthropic', 'ai21', 'cohere', 'meta', 'mistral', 'deepseek', 'openai', 'qwen', 'writer',
  'stability', 'luma', 'twelvelabs', 'moonshot', 'minimax', 'google', 'nvidia',
]);

const OPERATION: Record<string, { operation: Operation; stream: boolean } | undefined> = {
  converse: { operation: 'chat', stream: false },
  'converse-stream': { operation: 'chat', stream: true },
  invoke: { operation: 'chat', stream: false },
  'invoke-with-response-stream': { operation: 'chat', stream: true },
  'count-tokens': { operation: 'count_tokens', stream: false },
};

interface ModelRef {
  model: string;
  aliases: string[];
  profile?: string;
  /** Region named by an ARN. */
  arnRegion?: string;
  /** The first part of a three-part ID that is neither a vendor nor a known profile. */
  unknownProfile?: string;
}

/** Splits a model ID into model, inference profile and (for ARNs) region. Exported for tests. */
export function parseModelId(id: string): ModelRef {
  let rest = id;
  let arnRegion: string | undefined;
  const arn = /^arn:aws[a-z-]*:bedrock:([a-z0-9-]*):\d*:[a-z-]+\/(.+)$/.exec(id);
  if (arn) {
    arnRegion = arn[1] || undefined;
    rest = arn[2]!;
  }
  const parts = rest.split('.');
  let profile: string | undefined;
  let unknownProfile: string | undefined;
  // Foundation-model IDs are `vendor.model`; a third dotted part before them is a routing prefix. One that is
  // not a known profile makes the region unknown rather than guessed (a new AWS geography must not slip through).
  if (parts.length >= 3 && !VENDORS.has(parts[0]!)) {
    if (PROFILES[parts[0]!]) profile = parts[0];
    else unknownProfile = parts[0];
    rest = parts.slice(1).join('.');
  }
  const vendor = rest.indexOf('.');
  const aliases = vendor > 0 && VENDORS.has(rest.slice(0, vendor)) ? [rest.slice(vendor + 1)] : [];
  return { model: rest, aliases, ...(profile && { profile }), ...(arnRegion && { arnRegion }), ...(unknownProfile && { unknownProfile }) };
}

function describe(host: string, path: string): RequestDescription {
  const region = HOST.exec(host)?.[1];
  const m = PATH.exec(splitPath(path).pathname);
  const id = m ? decodeSegment(m[1]!) : undefined;
  const op = (m && OPERATION[m[2]!]) ?? { operation: 'unknown' as const, stream: false };
  if (id === undefined || id === '') {
    return { ...op, ...(m && { action: m[2]! }), ...(region && { region, reach: [region], regionNote: `Bedrock endpoint ${region}` }) };
  }
  const ref = parseModelId(id);
  const operation = op.operation === 'chat' && m![2]!.startsWith('invoke') && /embed/i.test(ref.model) ? 'embeddings' : op.operation;
  const base = {
    operation,
    stream: op.stream,
    action: m![2]!,
    model: ref.model,
    ...(ref.aliases.length > 0 && { modelAliases: ref.aliases }),
  };
  if (ref.unknownProfile !== undefined) {
    return { ...base, ...(region && { region }), regionNote: `unrecognised Bedrock inference profile "${ref.unknownProfile}."` };
  }
  const reach = [...new Set([region, ref.arnRegion, ...(ref.profile ? PROFILES[ref.profile]! : [])].filter((x): x is string => !!x))];
  const at = region ?? 'unknown region';
  const note = ref.profile ? `Bedrock ${at} with inference profile "${ref.profile}."` : `Bedrock endpoint ${at}`;
  return { ...base, ...(reach.length > 0 && { region: region ?? reach[0]!, reach }), regionNote: note };
}

/**
 * Bedrock reports fresh input apart from cache reads and writes; aigress counts input as all three, with the
 * cached part also under cachedInput (as the other providers report it).
 */
function cacheAwareUsage(inputTokens: unknown, cacheRead: unknown, cacheWrite: unknown, outputTokens: unknown): Usage | undefined {
  const fresh = count(inputTokens);
  const read = count(cacheRead);
  const write = count(cacheWrite);
  return compactUsage({
    input: fresh === undefined ? undefined : sumPresent(fresh, read, write),
    output: count(outputTokens),
    cachedInput: read,
    cacheWriteInput: write,
  });
}

/** `usage` of Converse / the ConverseStream `metadata` event. */
export function converseUsage(u: JsonObject): Usage | undefined {
  return cacheAwareUsage(u.inputTokens, u.cacheReadInputTokens, u.cacheWriteInputTokens, u.outputTokens);
}

/** `amazon-bedrock-invocationMetrics` in the last InvokeModelWithResponseStream chunk. */
function invocationMetricsUsage(m: JsonObject): Usage | undefined {
  return cacheAwareUsage(m.inputTokenCount, m.cacheReadInputTokenCount, m.cacheWriteInputTokenCount, m.outputTokenCount);
}

function headerCount(res: ResponseMeta, name: string): number | undefined {
  const v = header(res, name);
  return v !== undefined && /^\d{1,15}$/.test(v.trim()) ? Number(v) : undefined;
}

/** InvokeModel reports usage in response headers, whatever the model's body looks like. */
export function invokeHeaderUsage(res: ResponseMeta): Usage | undefined {
  const fresh = headerCount(res, 'x-amzn-bedrock-input-token-count');
  const read = headerCount(res, 'x-amzn-bedrock-cache-read-input-token-count');
  const write = headerCount(res, 'x-amzn-bedrock-cache-write-input-token-count');
  return compactUsage({
    input: fresh === undefined ? undefined : sumPresent(fresh, read, write),
    output: headerCount(res, 'x-amzn-bedrock-output-token-count'),
    cachedInput: read,
    cacheWriteInput: write,
  });
}

function eventBody(m: EventStreamMessage): unknown {
  if (m.headers[':message-type'] !== 'event') return undefined;
  return tryJson(Buffer.from(m.body.buffer, m.body.byteOffset, m.body.byteLength).toString('utf8'));
}

/** Converse answers JSON with `usage`; ConverseStream sends it in the `metadata` event. */
function converseHandlers(): UsageHandlers {
  let usage: Usage | undefined;
  return {
    eventStream(m) {
      if (m.headers[':event-type'] !== 'metadata') return;
      const doc = eventBody(m);
      if (isObject(doc) && isObject(doc.usage)) usage = converseUsage(doc.usage) ?? usage;
    },
    json(doc) {
      if (isObject(doc) && isObject(doc.usage)) usage = converseUsage(doc.usage);
    },
    result: () => (usage ? { usage } : {}),
  };
}

function invokeStreamHandlers(): UsageHandlers {
  let metrics: Usage | undefined;
  // Claude's own stream events ride inside the chunks too; used only if the metrics are missing.
  const claude = new AnthropicStreamUsage();
  return {
    eventStream(m) {
      if (m.headers[':event-type'] !== 'chunk') return;
      const doc = eventBody(m);
      if (!isObject(doc) || typeof doc.bytes !== 'string') return;
      const inner = tryJson(Buffer.from(doc.bytes, 'base64').toString('utf8'));
      if (!isObject(inner)) return;
      const im = inner['amazon-bedrock-invocationMetrics'];
      if (isObject(im)) metrics = invocationMetricsUsage(im) ?? metrics;
      claude.onEvent(inner);
    },
    result() {
      const usage = metrics ?? claude.usage();
      return usage ? { usage } : {};
    },
  };
}

export const bedrock: ProviderAdapter = {
  id: 'bedrock',
  otelName: 'aws.bedrock',
  matchHost: (host) => HOST.test(host),
  // AWS SDKs read the error name from x-amzn-ErrorType and the text from `message`.
  errorResponse: (kind, status, message) => {
    const type = {
      policy: 'AccessDeniedException',
      region: 'AccessDeniedException',
      budget: 'ThrottlingException',
      too_large: 'ValidationException',
      bad_gateway: 'ServiceUnavailableException',
      timeout: 'ModelTimeoutException',
      misdirected: 'ValidationException',
      bad_request: 'ValidationException',
      unavailable: 'ServiceUnavailableException',
    }[kind];
    return jsonError(status, kind, { message }, { 'x-amzn-errortype': type });
  },
  describe: (req) => describe(req.host, req.path),
  codec(d) {
    if (d.action === 'converse' || d.action === 'converse-stream') return bedrockConverseCodec;
    if (d.action === 'invoke' || d.action === 'invoke-with-response-stream') {
      const family = invokeFamily(d.model);
      return family && bedrockInvokeCodec(family);
    }
    return undefined;
  },
  usageHandlers(d, res): UsageHandlers {
    switch (d.action) {
      case 'converse':
      case 'converse-stream':
        return converseHandlers();
      case 'invoke-with-response-stream':
        return invokeStreamHandlers();
      case 'invoke': {
        const usage = invokeHeaderUsage(res);
        return { result: () => (usage ? { usage } : {}) };
      }
      default:
        return { result: () => ({}) };
    }
  },
};
