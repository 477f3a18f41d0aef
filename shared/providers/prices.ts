import { globToRegExp } from '../glob.js';
import type { PriceEntry, ProviderId } from '../policy/types.js';
import type { Usage } from './types.js';

export type { PriceEntry };

/**
 * The shipped price table: public list prices in USD per million tokens (standard tier, no batch or regional
 * surcharges, long-context tiers ignored), as published by the providers in 2025. It is an estimate to watch
 * trends with, not an invoice: a policy's `spec.metering.prices` is searched first and overrides any entry.
 * First match wins, so more specific globs come first. Globs are matched against the requested model, its
 * aliases (Bedrock IDs without the vendor prefix) and the model the response names.
 */
export const DEFAULT_PRICES: readonly PriceEntry[] = [
  // OpenAI (also Azure OpenAI, whose global deployments match these list prices)
  { model: 'gpt-5-nano*', input: 0.05, cachedInput: 0.005, output: 0.4 },
  { model: 'gpt-5-mini*', input: 0.25, cachedInput: 0.025, output: 2 },
  { model: 'gpt-5*', input: 1.25, cachedInput: 0.125, output: 10 },
  { model: 'gpt-4.1-nano*', input: 0.1, cachedInput: 0.025, output: 0.4 },
  { model: 'gpt-4.1-mini*', input: 0.4, cachedInput: 0.1, output: 1.6 },
  { model: 'gpt-4.1*', input: 2, cachedInput: 0.5, output: 8 },
  { model: 'gpt-4o-mini', input: 0.15, cachedInput: 0.075, output: 0.6 },
  { model: 'gpt-4o-mini-20*', input: 0.15, cachedInput: 0.075, output: 0.6 },
  { model: 'gpt-4o', input: 2.5, cachedInput: 1.25, output: 10 },
  { model: 'gpt-4o-20*', input: 2.5, cachedInput: 1.25, output: 10 },
  { model: 'o4-mini*', input: 1.1, cachedInput: 0.275, output: 4.4 },
  { model: 'o3-mini*', input: 1.1, cachedInput: 0.55, output: 4.4 },
  { model: 'o3', input: 2, cachedInput: 0.5, output: 8 },
  { model: 'o3-20*', input: 2, cachedInput: 0.5, output: 8 },
  { model: 'o1-mini*', input: 1.1, cachedInput: 0.55, output: 4.4 },
  { model: 'o1', input: 15, cachedInput: 7.5, output: 60 },
  { model: 'o1-20*', input: 15, cachedInput: 7.5, output: 60 },
  { model: 'text-embedding-3-small', input: 0.02, output: 0 },
  { model: 'text-embedding-3-large', input: 0.13, output: 0 },
  { model: 'text-embedding-ada-002', input: 0.1, output: 0 },
  // Anthropic (also Claude on Vertex AI `claude-…@date` and Bedrock `anthropic.claude-…`); cache writes at the
  // 5-minute rate (1.25 × input), cache reads at 0.1 × input.
  { model: 'claude-opus-4-5*', input: 5, cachedInput: 0.5, cacheWriteInput: 6.25, output: 25 },
  { model: 'claude-opus-4*', input: 15, cachedInput: 1.5, cacheWriteInput: 18.75, output: 75 },
  { model: 'claude-3-opus*', input: 15, cachedInput: 1.5, cacheWriteInput: 18.75, output: 75 },
  { model: 'claude-sonnet-4*', input: 3, cachedInput: 0.3, cacheWriteInput: 3.75, output: 15 },
  { model: 'claude-3-7-sonnet*', input: 3, cachedInput: 0.3, cacheWriteInput: 3.75, output: 15 },
  { model: 'claude-3-5-sonnet*', input: 3, cachedInput: 0.3, cacheWriteInput: 3.75, output: 15 },
  { model: 'claude-haiku-4-5*', input: 1, cachedInput: 0.1, cacheWriteInput: 1.25, output: 5 },
  { model: 'claude-3-5-haiku*', input: 0.8, cachedInput: 0.08, cacheWriteInput: 1, output: 4 },
  { model: 'claude-3-haiku*', input: 0.25, cachedInput: 0.03, cacheWriteInput: 0.3, output: 1.25 },
  // Google Gemini (Developer API and Vertex AI), prompts up to 200k tokens
  { model: 'gemini-2.5-pro*', input: 1.25, cachedInput: 0.125, output: 10 },
  { model: 'gemini-2.5-flash-lite*', input: 0.1, cachedInput: 0.01, output: 0.4 },
  { model: 'gemini-2.5-flash*', input: 0.3, cachedInput: 0.03, output: 2.5 },
  { model: 'gemini-2.0-flash-lite*', input: 0.075, output: 0.3 },
  { model: 'gemini-2.0-flash*', input: 0.1, cachedInput: 0.025, output: 0.4 },
  // Mistral AI
  { model: 'mistral-large*', input: 2, output: 6 },
  { model: 'mistral-medium*', input: 0.4, output: 2 },
  { model: 'mistral-small*', input: 0.1, output: 0.3 },
  { model: 'codestral*', input: 0.3, output: 0.9 },
  { model: 'mistral-embed*', input: 0.1, output: 0 },
  // Amazon Nova on Bedrock (`amazon.nova-pro-v1:0` → alias `nova-pro-v1:0`)
  { model: 'nova-pro*', input: 0.8, cachedInput: 0.2, output: 3.2 },
  { model: 'nova-lite*', input: 0.06, cachedInput: 0.015, output: 0.24 },
  { model: 'nova-micro*', input: 0.035, cachedInput: 0.00875, output: 0.14 },
];

export interface PriceTable {
  /** The first entry matching any of the model's names on this provider. */
  lookup(provider: ProviderId, names: readonly string[]): PriceEntry | undefined;
}

/** Compiles a policy's prices in front of the shipped table. Lookups are cached per provider and name list. */
export function compilePriceTable(policyPrices: readonly PriceEntry[] = [], defaults: readonly PriceEntry[] = DEFAULT_PRICES): PriceTable {
  const entries = [...policyPrices, ...defaults].map((e) => ({ e, re: globToRegExp(e.model) }));
  const cache = new Map<string, PriceEntry | null>();
  return {
    lookup(provider, names) {
      const key = `${provider}\u0000${names.join('\u0000')}`;
      let hit = cache.get(key);
      if (hit === undefined) {
        hit = entries.find(({ e, re }) => (e.provider === undefined || e.provider === provider) && names.some((n) => re.test(n)))?.e ?? null;
        if (cache.size >= 10_000) cache.clear(); // bounded: model names come from clients
        cache.set(key, hit);
      }
      return hit ?? undefined;
    },
  };
}

/**
 * Estimated cost in USD, pricing each part of the input at its own rate (uncached, cache read, cache write) and
 * all output, reasoning included, at the output rate — as the providers bill. Undefined when the usage has
 * neither input nor output.
 */
export function costUsd(u: Usage, p: PriceEntry): number | undefined {
  if (u.input === undefined && u.output === undefined) return undefined;
  const cached = u.cachedInput ?? 0;
  const written = u.cacheWriteInput ?? 0;
  const uncached = Math.max(0, (u.input ?? 0) - cached - written);
  const micro =
    uncached * p.input + cached * (p.cachedInput ?? p.input) + written * (p.cacheWriteInput ?? p.input) + (u.output ?? 0) * p.output;
  return micro / 1_000_000;
}
