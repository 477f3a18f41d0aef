import type { ProviderId } from '../../shared/policy/types.js';
import type { ContentCodec } from '../../shared/providers/content.js';
import type { RequestDescription } from '../../shared/providers/types.js';

// The reservation a request needs before it is forwarded: input tokens counted from the request's texts, plus
// the most the model may answer with. docs/budgets.md states the method per provider and its measured error.
//
// - OpenAI and Azure OpenAI models: gpt-tokenizer with the model's encoding (o200k_base for gpt-4o, gpt-4.1,
//   gpt-5, o-series; cl100k_base for gpt-4, gpt-3.5 and the embeddings), plus the chat format's overhead per
//   message. The encodings load in the background (≈250 ms each); until then the approximation below is used.
// - Every other model: ceil(UTF-8 bytes / 3) per text. English runs at about 4 to 4.5 bytes per token in these
//   tokenizers and CJK at about 3 bytes per character and token, so this over-counts: a reservation is
//   corrected at settlement, an under-count would let the budget overshoot.
// Images, audio and files are not counted (settlement charges them); base64 strings are skipped.

type Encoder = (text: string) => number;
type EncodingName = 'o200k_base' | 'cl100k_base';

const encoders: Partial<Record<EncodingName, Encoder>> = {};
const loading: Partial<Record<EncodingName, Promise<void>>> = {};

/** Starts loading an encoding (once); estimates use it as soon as it is in. */
export function loadEncoding(name: EncodingName): Promise<void> {
  loading[name] ??= (async () => {
    const mod = (name === 'o200k_base'
      ? await import('gpt-tokenizer/encoding/o200k_base')
      : await import('gpt-tokenizer/encoding/cl100k_base')) as { countTokens(text: string): number };
    encoders[name] = (text) => mod.countTokens(text);
  })();
  return loading[name];
}

/** The encoding an OpenAI model uses (as tiktoken maps it); undefined for other providers' models. */
export function openAiEncoding(provider: ProviderId, model: string | undefined): EncodingName | undefined {
  if (provider !== 'openai' && provider !== 'azure-openai') return undefined;
  const m = (model ?? '').toLowerCase();
  if (/^(gpt-4(-|$)|gpt-4-|gpt-3\.5|gpt-35|text-embedding-|davinci-002|babbage-002)/.test(m) && !/^gpt-4(o|\.)/.test(m)) return 'cl100k_base';
  return 'o200k_base'; // gpt-4o, gpt-4.1, gpt-5, o1/o3/o4 and Azure deployments of unknown name (the newer, denser count)
}

/** Conservative token count of a text for tokenizers we do not ship. */
export function approxTokens(text: string): number {
  return Math.ceil(Buffer.byteLength(text, 'utf8') / 3);
}

/** Tokens the chat formats add per message (role and separators); OpenAI documents 3, rounded up. */
const PER_MESSAGE = 4;
const PER_REQUEST = 3;

/** Keys whose string values are not text the model reads as tokens of the prompt. */
const NOT_TEXT = new Set(['model', 'role', 'type', 'id', 'data', 'url', 'image_url', 'file_id', 'mime_type', 'mimeType', 'media_type', 'format', 'bytes', 'tool_choice', 'encoding_format', 'service_tier', 'user', 'detail', 'modelId', 'anthropic_version', 'stop_reason', 'previous_response_id', 'fileUri', 'uri', 'signature']);
const BASE64ISH = /^[A-Za-z0-9+/=_-]{512,}$/;

/** Every string leaf of the request a model reads, when no content codec knows the format. */
export function requestTexts(json: unknown, out: string[] = [], key = ''): string[] {
  if (typeof json === 'string') {
    if (!NOT_TEXT.has(key) && !BASE64ISH.test(json)) out.push(json);
  } else if (Array.isArray(json)) {
    for (const v of json) requestTexts(v, out, key);
  } else if (json !== null && typeof json === 'object') {
    for (const [k, v] of Object.entries(json)) {
      if (NOT_TEXT.has(k) && typeof v === 'string') continue;
      requestTexts(v, out, k);
    }
  }
  return out;
}

/** Request-level keys whose content is tool or output-schema definitions (the model reads them, serialised). */
const DEFINITION_KEYS = ['tools', 'functions', 'toolConfig', 'response_format', 'output_format', 'text'] as const;

/**
 * The tool and structured-output definitions of a request, each as one JSON text: the providers render them into
 * the prompt and bill them as input, and a long tool description would otherwise be reserved as nothing. JSON
 * with its punctuation counts a little more than the providers' own renderings, which errs the safe way.
 * OpenAI chat `tools[].function` and legacy `functions[]`, the Responses API's flat `tools[]` and `text.format`,
 * Anthropic `tools[]` (name, description, input_schema) and `output_format`, Gemini `tools[].functionDeclarations`
 * and `generationConfig.responseSchema` / `responseJsonSchema`, Bedrock Converse `toolConfig.tools[].toolSpec`,
 * OpenAI `response_format` (json_schema).
 */
export function definitionTexts(json: Readonly<Record<string, unknown>>): string[] {
  const out: string[] = [];
  const add = (v: unknown): void => {
    if (v !== undefined && v !== null && typeof v === 'object') out.push(JSON.stringify(v));
  };
  const obj = (v: unknown): Record<string, unknown> | undefined => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined);
  const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
  for (const t of list(json.tools)) {
    const tool = obj(t);
    // OpenAI chat nests the definition under `function`; everything else is the definition itself
    add(obj(tool?.function) ?? tool);
  }
  for (const f of list(json.functions)) add(f);
  for (const t of list(obj(json.toolConfig)?.tools)) add(obj(obj(t)?.toolSpec) ?? t);
  const rf = obj(json.response_format);
  if (rf && rf.type !== 'text') add(rf);
  add(obj(json.output_format));
  const format = obj(obj(json.text)?.format);
  if (format && format.type !== 'text') add(format);
  const gen = obj(json.generationConfig);
  add(gen?.responseSchema);
  add(gen?.responseJsonSchema);
  return out;
}

/** The request without its definitions, for the generic walk (which would count their descriptions again). */
function withoutDefinitions(json: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const rest: Record<string, unknown> = { ...json };
  for (const k of DEFINITION_KEYS) if (rest[k] !== null && typeof rest[k] === 'object') delete rest[k];
  const gen = rest.generationConfig;
  if (gen !== null && typeof gen === 'object') {
    const g = { ...(gen as Record<string, unknown>) };
    delete g.responseSchema;
    delete g.responseJsonSchema;
    rest.generationConfig = g;
  }
  return rest;
}

export interface Estimate {
  readonly input: number;
  /** The most output tokens the request allows (its own cap, or the model's default). */
  readonly outputCap: number;
  /** `o200k_base`, `cl100k_base` or `approx`. */
  readonly method: string;
  /** The request named its own output cap. */
  readonly capFromRequest: boolean;
}

/**
 * Output cap when a request names none: the model's maximum output as the providers publish it (rounded),
 * so the reservation covers the longest answer. Apps that set max_tokens get tighter reservations.
 */
const DEFAULT_CAPS: readonly [RegExp, number][] = [
  [/^gpt-5/, 128_000], // 400k context, of which 128k output (the chat-latest aliases answer less: this errs high)
  [/^(o1|o3|o4)/, 100_000],
  [/^gpt-4\.1/, 32_768],
  [/^gpt-4o/, 16_384],
  [/^(gpt-4|gpt-3\.5|gpt-35)/, 4_096],
  [/claude-(opus-4|sonnet-4|3-7|haiku-4)/, 64_000],
  [/claude/, 8_192],
  [/gemini-2\.5/, 65_536],
  [/gemini/, 8_192],
  [/(mistral|codestral|ministral|magistral)/, 32_768],
  [/nova/, 10_000],
];
export const FALLBACK_CAP = 16_384;

export function defaultOutputCap(model: string | undefined): number {
  const m = (model ?? '').toLowerCase();
  for (const [re, cap] of DEFAULT_CAPS) if (re.test(m)) return cap;
  return FALLBACK_CAP;
}

const positiveInt = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? Math.ceil(v) : undefined);

/** The request's own output cap, wherever its wire format puts it. */
export function requestedOutputCap(json: Readonly<Record<string, unknown>>): number | undefined {
  const gen = json.generationConfig as Record<string, unknown> | undefined;
  const inf = json.inferenceConfig as Record<string, unknown> | undefined;
  for (const v of [json.max_completion_tokens, json.max_output_tokens, json.max_tokens, json.maxTokens, gen?.maxOutputTokens, inf?.maxTokens]) {
    const n = positiveInt(v);
    if (n !== undefined) return n;
  }
  return undefined;
}

const NO_OUTPUT = new Set(['embeddings']);

export function estimateRequest(
  provider: ProviderId,
  d: RequestDescription,
  json: Readonly<Record<string, unknown>> | undefined,
  codec?: ContentCodec,
): Estimate {
  const encoding = openAiEncoding(provider, d.model);
  if (encoding) void loadEncoding(encoding).catch(() => undefined);
  const count = (encoding && encoders[encoding]) ?? approxTokens;
  const method = encoding && encoders[encoding] ? encoding : 'approx';
  let texts: string[] = [];
  let definitions: string[] = [];
  if (json) {
    try {
      texts = codec ? codec.request(json as Record<string, unknown> as never).map((s) => s.text) : requestTexts(withoutDefinitions(json));
    } catch {
      texts = requestTexts(withoutDefinitions(json));
    }
    definitions = definitionTexts(json);
  }
  let input = PER_REQUEST;
  for (const t of texts) input += count(t) + PER_MESSAGE;
  for (const t of definitions) input += count(t);
  const requested = json ? requestedOutputCap(json) : undefined;
  const outputCap = NO_OUTPUT.has(d.operation) ? 0 : requested ?? defaultOutputCap(d.model);
  return { input, outputCap, method, capFromRequest: requested !== undefined };
}
