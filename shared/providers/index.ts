import type { ProviderId } from '../policy/types.js';
import { anthropic } from './anthropic.js';
import { azureOpenai } from './azure-openai.js';
import { bedrock } from './bedrock.js';
import { gemini } from './gemini.js';
import { mistral } from './mistral.js';
import { openai } from './openai.js';
import type { ProviderAdapter } from './types.js';
import { vertexAi } from './vertex-ai.js';

export type { ProviderAdapter } from './types.js';

/** The provider catalogue, in match order. */
export const ADAPTERS: readonly ProviderAdapter[] = [openai, azureOpenai, anthropic, gemini, vertexAi, bedrock, mistral];


/**
 * Compiled once per policy: which adapter (if any) owns a host. Providers the policy does not list are not
 * intercepted. Results are cached per host name: the hot path does one Map lookup.
 */
export function compileHostMatcher(providers: readonly ProviderId[]): (host: string) => ProviderAdapter | undefined {
  const enabled = ADAPTERS.filter((a) => providers.includes(a.id));
  const cache = new Map<string, ProviderAdapter | null>();
  return (rawHost: string) => {
    const host = rawHost.toLowerCase().replace(/\.$/, '');
    let hit = cache.get(host);
    if (hit === undefined) {
      hit = enabled.find((a) => a.matchHost(host)) ?? null;
      if (cache.size > 10_000) cache.clear(); // bounded: hostile SNI values must not grow memory
      cache.set(host, hit);
    }
    return hit ?? undefined;
  };
}
