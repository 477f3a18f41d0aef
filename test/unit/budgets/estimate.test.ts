// Estimation: the OpenAI encodings per model, the approximation's error on the provider fixtures (texts with
// the output token counts the fixtures report), output caps from each wire format.
import { readFileSync } from 'node:fs';
import { countTokens } from 'gpt-tokenizer/encoding/o200k_base';
import { describe, expect, it } from 'vitest';
import { anthropicMessagesCodec } from '../../../shared/providers/anthropic-content.js';
import { bedrockConverseCodec } from '../../../shared/providers/bedrock-content.js';
import { geminiCodec } from '../../../shared/providers/gemini-content.js';
import { openAiChatCodec, openAiResponsesCodec } from '../../../shared/providers/openai-content.js';
import type { ContentCodec } from '../../../shared/providers/content.js';
import type { ProviderId } from '../../../shared/policy/types.js';
import type { RequestDescription } from '../../../shared/providers/types.js';
import { approxTokens, defaultOutputCap, definitionTexts, estimateRequest, loadEncoding, openAiEncoding, requestedOutputCap, requestTexts } from '../../../sidecar/budgets/estimate.js';

const fixture = (p: string) => JSON.parse(readFileSync(new URL(`../../fixtures/providers/${p}`, import.meta.url), 'utf8')) as Record<string, unknown>;
/** The value at `path` in a parsed fixture. */
const at = (v: unknown, ...path: (string | number)[]): unknown => path.reduce<unknown>((o, k) => (o as Record<string | number, unknown> | undefined)?.[k], v);
/** Joins the `text` of the parts of a content list (skipping non-text parts). */
const texts = (list: unknown, key = 'text'): string => (list as Record<string, unknown>[]).filter((p) => typeof p[key] === 'string' && (p.type === undefined || p.type === 'text')).map((p) => p[key] as string).join('');

// fixture → (its answer's text, the output tokens it reports)
const CASES: [string, (j: unknown) => [string, number]][] = [
  ['openai/chat.json', (j) => [String(at(j, 'choices', 0, 'message', 'content')), Number(at(j, 'usage', 'completion_tokens'))]],
  ['anthropic/messages.json', (j) => [texts(at(j, 'content')), Number(at(j, 'usage', 'output_tokens'))]],
  ['vertex-ai/anthropic-raw.json', (j) => [texts(at(j, 'content')), Number(at(j, 'usage', 'output_tokens'))]],
  ['gemini/generate-cached.json', (j) => [texts(at(j, 'candidates', 0, 'content', 'parts')), Number(at(j, 'usageMetadata', 'candidatesTokenCount'))]],
  ['mistral/chat.json', (j) => [String(at(j, 'choices', 0, 'message', 'content')), Number(at(j, 'usage', 'completion_tokens'))]],
  ['bedrock/converse.json', (j) => [texts(at(j, 'output', 'message', 'content')), Number(at(j, 'usage', 'outputTokens'))]],
];

describe('token estimates', () => {
  it('picks the model\'s encoding for OpenAI models and none for other providers', () => {
    expect(openAiEncoding('openai', 'gpt-4o-2024-08-06')).toBe('o200k_base');
    expect(openAiEncoding('openai', 'gpt-4.1-mini')).toBe('o200k_base');
    expect(openAiEncoding('openai', 'o3-mini')).toBe('o200k_base');
    expect(openAiEncoding('openai', 'gpt-4-turbo')).toBe('cl100k_base');
    expect(openAiEncoding('openai', 'gpt-3.5-turbo')).toBe('cl100k_base');
    expect(openAiEncoding('openai', 'text-embedding-3-small')).toBe('cl100k_base');
    expect(openAiEncoding('azure-openai', 'gpt-4o')).toBe('o200k_base');
    expect(openAiEncoding('anthropic', 'claude-sonnet-4-5')).toBeUndefined();
  });

  it('counts OpenAI input with the real tokenizer once it is loaded', async () => {
    await loadEncoding('o200k_base');
    const text = 'The quick brown fox jumps over the lazy dog. '.repeat(20);
    const e = estimateRequest('openai', { operation: 'chat', model: 'gpt-4o', stream: false }, { model: 'gpt-4o', max_tokens: 7, messages: [{ role: 'user', content: text }] });
    expect(e.method).toBe('o200k_base');
    expect(e.input).toBe(countTokens(text) + 4 + 3);
    expect(e.outputCap).toBe(7);
  });

  it('the approximation over-counts every fixture answer, against o200k and against the reported count', () => {
    const rows: string[] = [];
    for (const [file, read] of CASES) {
      const [text, reported] = read(fixture(file));
      expect(text.length, file).toBeGreaterThan(10);
      const approx = approxTokens(text);
      const o200k = countTokens(text);
      rows.push(`${file}: ${text.length} chars, approx ${approx}, o200k ${o200k} (${(approx / o200k).toFixed(2)}×), reported ${reported} (${(approx / reported).toFixed(2)}×)`);
      expect(approx, file).toBeGreaterThanOrEqual(o200k);
    }
    const cjk = '人工知能の予算は名前空間ごとに共有されます。'.repeat(10);
    rows.push(`CJK sample: approx ${approxTokens(cjk)}, o200k ${countTokens(cjk)}`);
    expect(approxTokens(cjk)).toBeGreaterThanOrEqual(countTokens(cjk));
    console.info(`[estimate]\n${rows.join('\n')}`);
  });

  it('reads the output cap wherever each format puts it, else the model\'s default', () => {
    expect(requestedOutputCap({ max_completion_tokens: 10, max_tokens: 20 })).toBe(10);
    expect(requestedOutputCap({ max_output_tokens: 30 })).toBe(30);
    expect(requestedOutputCap({ generationConfig: { maxOutputTokens: 40 } })).toBe(40);
    expect(requestedOutputCap({ inferenceConfig: { maxTokens: 50 } })).toBe(50);
    expect(requestedOutputCap({ maxTokens: 60 })).toBe(60);
    expect(requestedOutputCap({})).toBeUndefined();
    expect(defaultOutputCap('gpt-4o-mini')).toBe(16_384);
    expect(defaultOutputCap('gpt-5-mini')).toBe(128_000);
    expect(defaultOutputCap('o3-mini')).toBe(100_000);
    expect(defaultOutputCap('gemini-2.5-flash')).toBe(65_536);
    expect(defaultOutputCap('something-new')).toBe(16_384);
    const emb = estimateRequest('openai', { operation: 'embeddings', model: 'text-embedding-3-small', stream: false }, { model: 'text-embedding-3-small', input: 'hi' });
    expect(emb.outputCap).toBe(0);
  });

  // 10 000 characters of tool description, in each wire format's place for it; the estimate with the tool must
  // exceed the one without by at least the description's own token count.
  const DESC = 'Looks up the weather forecast for a city and returns it in the unit the caller prefers. '.repeat(115).slice(0, 10_000);
  const SCHEMA = { type: 'object', properties: { city: { type: 'string', description: 'The city' } }, required: ['city'] };
  const TOOLS: [string, ProviderId, string, RequestDescription['operation'], ContentCodec | undefined, Record<string, unknown>, Record<string, unknown>][] = [
    ['OpenAI chat tools[].function', 'openai', 'gpt-4o', 'chat', openAiChatCodec, { messages: [{ role: 'user', content: 'weather in Paris?' }] }, { tools: [{ type: 'function', function: { name: 'get_weather', description: DESC, parameters: SCHEMA } }] }],
    ['OpenAI Responses flat tools[]', 'openai', 'gpt-4o', 'responses', openAiResponsesCodec, { input: 'weather in Paris?' }, { tools: [{ type: 'function', name: 'get_weather', description: DESC, parameters: SCHEMA }] }],
    ['OpenAI response_format json_schema', 'openai', 'gpt-4o', 'chat', openAiChatCodec, { messages: [{ role: 'user', content: 'weather in Paris?' }] }, { response_format: { type: 'json_schema', json_schema: { name: 'w', description: DESC, schema: SCHEMA } } }],
    ['Anthropic tools[]', 'anthropic', 'claude-sonnet-4-5', 'chat', anthropicMessagesCodec, { max_tokens: 10, messages: [{ role: 'user', content: 'weather in Paris?' }] }, { tools: [{ name: 'get_weather', description: DESC, input_schema: SCHEMA }] }],
    ['Gemini tools[].functionDeclarations', 'gemini', 'gemini-2.5-flash', 'chat', geminiCodec, { contents: [{ role: 'user', parts: [{ text: 'weather in Paris?' }] }] }, { tools: [{ functionDeclarations: [{ name: 'get_weather', description: DESC, parameters: SCHEMA }] }] }],
    ['Gemini responseSchema', 'gemini', 'gemini-2.5-flash', 'chat', geminiCodec, { contents: [{ role: 'user', parts: [{ text: 'weather in Paris?' }] }] }, { generationConfig: { responseMimeType: 'application/json', responseSchema: { ...SCHEMA, description: DESC } } }],
    ['Bedrock Converse toolConfig.tools[].toolSpec', 'bedrock', 'anthropic.claude-3-5-sonnet', 'chat', bedrockConverseCodec, { messages: [{ role: 'user', content: [{ text: 'weather in Paris?' }] }] }, { toolConfig: { tools: [{ toolSpec: { name: 'get_weather', description: DESC, inputSchema: { json: SCHEMA } } }] } }],
    ['no codec (generic walk), Anthropic tools[]', 'anthropic', 'claude-sonnet-4-5', 'chat', undefined, { messages: [{ role: 'user', content: 'weather in Paris?' }] }, { tools: [{ name: 'get_weather', description: DESC, input_schema: SCHEMA }] }],
  ];
  it.each(TOOLS)('counts tool and schema definitions in the input: %s', async (_what, provider, model, operation, codec, body, defs) => {
    await loadEncoding('o200k_base');
    const d: RequestDescription = { operation, model, stream: false };
    const without = estimateRequest(provider, d, { model, ...body }, codec);
    const withDefs = estimateRequest(provider, d, { model, ...body, ...defs }, codec);
    const count = without.method === 'o200k_base' ? countTokens : approxTokens;
    const added = withDefs.input - without.input;
    expect(added).toBeGreaterThanOrEqual(count(DESC));
    // counted once: the JSON around the description adds little, not a second copy of it
    expect(added).toBeLessThan(count(DESC) * 1.3);
  });

  it('reads no definitions from a request without any, and skips a plain-text response format', () => {
    expect(definitionTexts({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }], response_format: { type: 'text' }, text: { format: { type: 'text' } } })).toEqual([]);
  });

  it('counts the texts a model reads, not ids, roles, models or base64 data', () => {
    const texts = requestTexts({ model: 'm', messages: [{ role: 'user', content: [{ type: 'text', text: 'hello' }, { type: 'image', source: { data: 'A'.repeat(4000), media_type: 'image/png' } }] }], system: 'be brief' });
    expect(texts).toEqual(['hello', 'be brief']);
  });
});
