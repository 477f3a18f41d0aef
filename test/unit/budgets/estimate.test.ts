// Estimation: the OpenAI encodings per model, the approximation's error on the provider fixtures (texts with
// the output token counts the fixtures report), output caps from each wire format.
import { readFileSync } from 'node:fs';
import { countTokens } from 'gpt-tokenizer/encoding/o200k_base';
import { describe, expect, it } from 'vitest';
import { approxTokens, defaultOutputCap, estimateRequest, loadEncoding, openAiEncoding, requestedOutputCap, requestTexts } from '../../../sidecar/budgets/estimate.js';

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
    expect(defaultOutputCap('gemini-2.5-flash')).toBe(65_536);
    expect(defaultOutputCap('something-new')).toBe(16_384);
    const emb = estimateRequest('openai', { operation: 'embeddings', model: 'text-embedding-3-small', stream: false }, { model: 'text-embedding-3-small', input: 'hi' });
    expect(emb.outputCap).toBe(0);
  });

  it('counts the texts a model reads, not ids, roles, models or base64 data', () => {
    const texts = requestTexts({ model: 'm', messages: [{ role: 'user', content: [{ type: 'text', text: 'hello' }, { type: 'image', source: { data: 'A'.repeat(4000), media_type: 'image/png' } }] }], system: 'be brief' });
    expect(texts).toEqual(['hello', 'be brief']);
  });
});
