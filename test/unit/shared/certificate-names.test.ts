import { describe, expect, it } from 'vitest';
import { PROVIDER_IDS } from '../../../shared/policy/types.js';
import { compileHostMatcher } from '../../../shared/providers/index.js';
import { certificateNames, isDnsName, nameIssuable, namesCover } from '../../../shared/certificate-names.js';

describe('certificate host names', () => {
  it('lists, per provider, only hosts the provider catalogue assigns to that provider', () => {
    for (const p of PROVIDER_IDS) {
      const names = certificateNames([p]);
      expect(names.length, p).toBeGreaterThan(0);
      const match = compileHostMatcher([p]);
      for (const n of names) {
        expect(isDnsName(n), n).toBe(true);
        // a wildcard stands for its hosts: check one
        const host = n.startsWith('*.') ? `example-resource${n.slice(1)}` : n;
        expect(match(host)?.id, host).toBe(p);
      }
    }
  });

  it('uses wildcards only where a one-label wildcard is exact', () => {
    const all = certificateNames(PROVIDER_IDS);
    expect(all.filter((n) => n.includes('*'))).toEqual(['*.openai.azure.com']);
    expect(all).toContain('bedrock-runtime.eu-central-1.amazonaws.com');
    expect(all).toContain('europe-west4-aiplatform.googleapis.com');
    expect(new Set(all).size).toBe(all.length);
  });

  it('covers hosts the way TLS clients match names', () => {
    const names = certificateNames(['openai', 'azure-openai']);
    expect(namesCover(names, 'api.openai.com')).toBe(true);
    expect(namesCover(names, 'API.OpenAI.com.')).toBe(true);
    expect(namesCover(names, 'myres.openai.azure.com')).toBe(true);
    expect(namesCover(names, 'a.b.openai.azure.com')).toBe(false);
    expect(namesCover(names, 'openai.azure.com')).toBe(false);
    expect(namesCover(names, 'api.anthropic.com')).toBe(false);
  });

  it('issues table names and catalogue hosts of enabled providers, nothing else', () => {
    expect(nameIssuable('api.anthropic.com', ['anthropic'])).toBe(true);
    expect(nameIssuable('api.anthropic.com', ['openai'])).toBe(false);
    expect(nameIssuable('us-central9-aiplatform.googleapis.com', ['vertex-ai'])).toBe(true); // not in the table, on demand
    expect(nameIssuable('*.googleapis.com', ['vertex-ai'])).toBe(false);
    expect(nameIssuable('*.openai.azure.com', ['azure-openai'])).toBe(true);
    expect(nameIssuable('x.openai.azure.com', ['azure-openai'])).toBe(true);
    expect(nameIssuable('storage.googleapis.com', ['vertex-ai', 'gemini'])).toBe(false);
    for (const bad of ['', 'localhost', '*', '*.com', 'a..b', '-a.com', 'UPPER.example.com', 'a.com.']) expect(isDnsName(bad), bad).toBe(false);
  });
});
