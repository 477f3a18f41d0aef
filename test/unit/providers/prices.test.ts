import { describe, expect, it } from 'vitest';
import { compilePriceTable, costUsd, DEFAULT_PRICES } from '../../../shared/providers/prices.js';

describe('price table', () => {
  const table = compilePriceTable([{ model: 'gpt-4o', provider: 'azure-openai', input: 2.75, output: 11 }]);

  it('takes the first match, more specific globs before general ones', () => {
    expect(table.lookup('openai', ['gpt-4o-mini'])).toMatchObject({ input: 0.15 });
    expect(table.lookup('openai', ['gpt-4o-2024-08-06'])).toMatchObject({ input: 2.5 });
    expect(table.lookup('openai', ['gpt-4o-audio-preview'])).toBeUndefined();
    expect(table.lookup('anthropic', ['claude-opus-4-5-20251101'])).toMatchObject({ input: 5 });
    expect(table.lookup('anthropic', ['claude-opus-4-1-20250805'])).toMatchObject({ input: 15 });
  });
  it('searches policy entries first, restricted to their provider', () => {
    expect(table.lookup('azure-openai', ['gpt-4o'])).toMatchObject({ input: 2.75 });
    expect(table.lookup('openai', ['gpt-4o'])).toMatchObject({ input: 2.5 });
  });
  it('matches any of the names: aliases and the response model', () => {
    expect(table.lookup('bedrock', ['anthropic.claude-3-5-haiku-20241022-v1:0', 'claude-3-5-haiku-20241022-v1:0'])).toMatchObject({ input: 0.8 });
    expect(table.lookup('azure-openai', ['my-deployment', 'gpt-4.1-mini-2025-04-14'])).toMatchObject({ input: 0.4 });
    expect(table.lookup('openai', ['my-fine-tune'])).toBeUndefined();
  });
  it('has no duplicate-looking entries that could never match', () => {
    const seen = new Set<string>();
    for (const p of DEFAULT_PRICES) {
      expect(seen.has(p.model), p.model).toBe(false);
      seen.add(p.model);
    }
  });
});

describe('costUsd', () => {
  const gpt4o = DEFAULT_PRICES.find((p) => p.model === 'gpt-4o')!;
  const sonnet = DEFAULT_PRICES.find((p) => p.model === 'claude-sonnet-4*')!;
  const o4mini = DEFAULT_PRICES.find((p) => p.model === 'o4-mini*')!;

  it('prices cached input at the cached rate', () => {
    // 93 uncached × 2.50 + 1024 cached × 1.25 + 46 output × 10, per million
    expect(costUsd({ input: 1117, cachedInput: 1024, output: 46 }, gpt4o)).toBeCloseTo((93 * 2.5 + 1024 * 1.25 + 46 * 10) / 1e6, 12);
  });
  it('prices cache writes at the write rate', () => {
    expect(costUsd({ input: 2008, cachedInput: 0, cacheWriteInput: 1536, output: 89 }, sonnet)).toBeCloseTo((472 * 3 + 1536 * 3.75 + 89 * 15) / 1e6, 12);
  });
  it('prices reasoning as output (it is part of output)', () => {
    expect(costUsd({ input: 43, output: 1329, reasoning: 1024 }, o4mini)).toBeCloseTo((43 * 1.1 + 1329 * 4.4) / 1e6, 12);
  });
  it('uses the input rate when an entry has no cached rate, and has no cost without counts', () => {
    expect(costUsd({ input: 100, cachedInput: 40 }, { model: 'x', input: 1, output: 2 })).toBeCloseTo(100 / 1e6, 12);
    expect(costUsd({ cachedInput: 5 }, gpt4o)).toBeUndefined();
  });
});
