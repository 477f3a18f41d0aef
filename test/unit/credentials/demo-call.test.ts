// The demo's managed-credential step fails when the provider gets the app's placeholder instead of the managed key.
import { describe, expect, it } from 'vitest';
import { demoCalls } from '../../../cli/demo/calls.js';
import type { RequestRecord } from '../../../cli/demo/fake-provider.js';
import { DEMO_MANAGED_ANTHROPIC_KEY, DEMO_PLACEHOLDER_KEY, DEMO_POLICY_YAML } from '../../../cli/demo/sample.js';

describe('demo: managed Anthropic key', () => {
  const call = demoCalls().find((c) => c.id === 'anthropic')!;
  const answer = { status: 200, body: JSON.stringify({ content: [{ type: 'text', text: `echo: ${call.prompt}` }] }), peer: { subject: 'x', issuer: 'y' } };
  const upstream = (key: string): RequestRecord[] => [{ headers: { 'x-api-key': key } } as unknown as RequestRecord];

  it('the app sends only the placeholder, the policy names the credential', () => {
    expect(call.headers['x-api-key']).toBe(DEMO_PLACEHOLDER_KEY);
    expect(DEMO_POLICY_YAML).toContain('credentials: [{ provider: anthropic');
  });
  it('passes with the managed key upstream, fails with the placeholder', () => {
    expect(call.checkAnswer!(answer, upstream(DEMO_MANAGED_ANTHROPIC_KEY))).toBeUndefined();
    expect(call.checkAnswer!(answer, upstream(DEMO_PLACEHOLDER_KEY))).toMatch(/placeholder, not the managed key/);
  });
});
