// The budget processor with the local store (scope pod) through the real runner: reserve, 429 with the
// provider's headers, settle to billed usage, release on denial, usage missing, USD budgets.
import { describe, expect, it } from 'vitest';
import { resetDuration } from '../../../sidecar/pipeline/budget.js';
import { validatePolicy } from '../../../shared/policy/validate.js';
import { exchange, metric, policy, respond, runRequest, setup } from '../pipeline/harness.js';

const CHAT = '/v1/chat/completions';
const JSON_H = { 'content-type': 'application/json' };
const chat = (max: number, text = 'hello there') => ({ model: 'gpt-4o', max_tokens: max, messages: [{ role: 'user', content: text }] });
const usageBody = (input: number, output: number) => Buffer.from(JSON.stringify({ id: 'x', object: 'chat.completion', model: 'gpt-4o', choices: [], usage: { prompt_tokens: input, completion_tokens: output, total_tokens: input + output } }));

describe('spec.budgets validation', () => {
  const check = (b: unknown) => validatePolicy({ apiVersion: 'aigress.io/v1alpha1', kind: 'EgressPolicy', metadata: { name: 'p' }, spec: { budgets: [b] } });
  it('accepts every documented field and fills defaults', () => {
    const r = check({ usd: 5, per: '1d', scope: 'workload', models: ['gpt-4o*'], providers: ['openai'] });
    expect(r.ok && r.policy.spec.budgets[0]).toEqual({ usd: 5, per: '1d', scope: 'workload', models: ['gpt-4o*'], providers: ['openai'], onStoreError: 'FailClosed' });
    const t = check({ tokens: 10, type: 'output', per: '30s', scope: 'serviceaccount', onStoreError: 'FailOpen' });
    expect(t.ok && t.policy.spec.budgets[0]).toEqual({ tokens: 10, type: 'output', per: '30s', scope: 'serviceaccount', onStoreError: 'FailOpen' });
  });
  it('names the field of each mistake', () => {
    const paths = (b: unknown) => { const r = check(b); return r.ok ? [] : r.issues.map((i) => i.path); };
    expect(paths({ per: '1m' })).toEqual(['spec.budgets[0]']);
    expect(paths({ tokens: 1, usd: 1, per: '1m' })).toEqual(['spec.budgets[0]']);
    expect(paths({ usd: 1, type: 'input', per: '1m' })).toEqual(['spec.budgets[0].type']);
    expect(paths({ tokens: 1, per: '1m', scope: 'cluster' })).toEqual(['spec.budgets[0].scope']);
    expect(paths({ tokens: 1, per: '1m', onStoreError: 'Ignore' })).toEqual(['spec.budgets[0].onStoreError']);
    expect(paths({ tokens: 1, per: '1m', providers: ['openia'] })).toEqual(['spec.budgets[0].providers[0]']);
    expect(paths({ tokens: 1, per: '10ms' })).toEqual(['spec.budgets[0].per']);
    expect(paths({ usd: -1, per: '1m' })).toEqual(['spec.budgets[0].usd']);
  });
  it('is enforced now: a policy with budgets is accepted', () => {
    expect(check({ tokens: 5, per: '1m' }).ok).toBe(true);
  });
});

describe('x-ratelimit-reset-tokens format', () => {
  // Go's duration string, as OpenAI sends it: a whole minute is "1m0s", never "1m" (seen as a CI flake at 60 s).
  it('writes every smaller unit once a larger one is present', () => {
    expect(resetDuration(20)).toBe('20ms');
    expect(resetDuration(0.2)).toBe('1ms');
    expect(resetDuration(1000)).toBe('1s');
    expect(resetDuration(59_001)).toBe('1m0s');
    expect(resetDuration(60_000)).toBe('1m0s');
    expect(resetDuration(61_000)).toBe('1m1s');
    expect(resetDuration(3_600_000)).toBe('1h0m0s');
    expect(resetDuration(3_661_000)).toBe('1h1m1s');
  });
});

describe('budget processor (scope pod, local store)', () => {
  it('reserves input estimate + max_tokens, refuses with 429 and OpenAI headers once spent, settles to usage', async () => {
    const p = policy({ budgets: [{ tokens: 1000, per: '1m', scope: 'pod' }] });
    const { pipeline, registry } = setup(p);
    const first = await runRequest(pipeline, exchange(p, 'api.openai.com', CHAT, chat(500)));
    expect(first.verdict.action).toBe('continue');
    const est = first.ex.results.estimatedInputTokens!;
    expect(est).toBeGreaterThan(3);
    expect(est).toBeLessThan(20);
    expect(first.ex.facts).toMatchObject({ budget: 'reserved', budgetReservedTokens: est + 500, budgetEstimate: expect.any(String) });
    // a second one does not fit while the first is in flight (1000 - (est + 500) < est + 500)
    const second = await runRequest(pipeline, exchange(p, 'api.openai.com', CHAT, chat(500)));
    expect(second.verdict).toMatchObject({ action: 'deny', status: 429, kind: 'budget', reason: 'budget_exhausted' });
    const h = (second.verdict as { headers: Record<string, string> }).headers;
    expect(Number(h['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(Number(h['retry-after'])).toBeLessThanOrEqual(62);
    expect(h['x-ratelimit-limit-tokens']).toBe('1000');
    expect(Number(h['x-ratelimit-remaining-tokens'])).toBe(1000 - est - 500);
    expect(h['x-ratelimit-reset-tokens']).toMatch(/^(\d+m)?\d+s$/);
    expect(h['x-should-retry']).toBeUndefined(); // under a minute: the SDKs wait it out themselves
    // the first settles to what it used: 10 + 20 tokens, so the next fits again
    await respond(pipeline, first.ex, 200, JSON_H, [usageBody(10, 20)]);
    expect(first.ex.facts.budgetSettledTokens).toBe(30);
    const third = await runRequest(pipeline, exchange(p, 'api.openai.com', CHAT, chat(500)));
    expect(third.verdict.action).toBe('continue');
    expect(await metric(registry, 'aigress_budget_rejections_total', { budget: 'budgets[0]', reason: 'budget_exhausted' })).toBe(1);
    expect(await metric(registry, 'aigress_budget_reserved_tokens_total', { budget: 'budgets[0]' })).toBe(2 * (est + 500));
    expect(await metric(registry, 'aigress_budget_settled_tokens_total', { budget: 'budgets[0]' })).toBe(30);
    expect(await metric(registry, 'aigress_budget_remaining', { budget: 'budgets[0]', scope: 'pod', key: 'team-a/pod/chat-7d9f-abcde' })).toBe(1000 - 30 - est - 500);
  });

  it('uses Anthropic headers for Anthropic; a request larger than the whole budget gets 403, not a retry', async () => {
    const p = policy({ budgets: [{ tokens: 100, per: '1m', scope: 'pod' }] });
    const { pipeline } = setup(p);
    const a = await runRequest(pipeline, exchange(p, 'api.anthropic.com', '/v1/messages', { model: 'claude-sonnet-4-5', max_tokens: 60, messages: [{ role: 'user', content: 'hi' }] }));
    expect(a.verdict.action).toBe('continue');
    const b = await runRequest(pipeline, exchange(p, 'api.anthropic.com', '/v1/messages', { model: 'claude-sonnet-4-5', max_tokens: 60, messages: [{ role: 'user', content: 'hi' }] }));
    const h = (b.verdict as { headers: Record<string, string> }).headers;
    expect(b.verdict).toMatchObject({ status: 429 });
    expect(h['anthropic-ratelimit-tokens-limit']).toBe('100');
    expect(h['anthropic-ratelimit-tokens-reset']).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(h['x-ratelimit-limit-tokens']).toBeUndefined();
    const big = await runRequest(pipeline, exchange(p, 'api.anthropic.com', '/v1/messages', { model: 'claude-sonnet-4-5', max_tokens: 5000, messages: [] }));
    expect(big.verdict).toMatchObject({ status: 403, reason: 'budget_request_too_large' });
  });

  it('releases every reservation when one budget refuses (the strictest decides)', async () => {
    const p = policy({ budgets: [{ tokens: 100000, per: '1h', scope: 'pod' }, { tokens: 600, type: 'output', per: '1m', scope: 'pod' }] });
    const { pipeline, registry } = setup(p);
    expect((await runRequest(pipeline, exchange(p, 'api.openai.com', CHAT, chat(500)))).verdict.action).toBe('continue');
    const r = await runRequest(pipeline, exchange(p, 'api.openai.com', CHAT, chat(500)));
    expect(r.verdict).toMatchObject({ status: 429 });
    expect((r.verdict as { message: string }).message).toContain('budgets[1]');
    expect((r.verdict as { headers: Record<string, string> }).headers['x-should-retry']).toBeUndefined();
    const hour = await metric(registry, 'aigress_budget_remaining', { budget: 'budgets[0]' });
    const est = r.ex.results.estimatedInputTokens!;
    expect(hour).toBe(100000 - est - 500); // only the admitted request holds the hourly budget
  });

  it('settles at the reservation when usage is missing, and to nothing when the provider refused', async () => {
    const p = policy({ budgets: [{ tokens: 10000, per: '1m', scope: 'pod' }] });
    const { pipeline, registry } = setup(p);
    const a = await runRequest(pipeline, exchange(p, 'api.openai.com', CHAT, chat(100)));
    await respond(pipeline, a.ex, 200, JSON_H, [Buffer.from('{"id":"x","choices":[]}')]);
    expect(a.ex.results.usageMissing).toBe('not_reported');
    const reserved = a.ex.results.estimatedInputTokens! + 100;
    expect(a.ex.facts.budgetSettledTokens).toBe(reserved);
    const b = await runRequest(pipeline, exchange(p, 'api.openai.com', CHAT, chat(100)));
    await respond(pipeline, b.ex, 500, JSON_H, [Buffer.from('{"error":{"message":"boom"}}')]);
    expect(b.ex.facts.budgetSettledTokens).toBe(0);
    expect(await metric(registry, 'aigress_budget_remaining', { budget: 'budgets[0]' })).toBe(10000 - reserved);
  });

  it('counts USD from the price table, only for the models and providers it names', async () => {
    // gpt-4o: $2.50 in, $10 out per million; 1000 output tokens reserve $0.01 plus the input
    const p = policy({ budgets: [{ usd: 0.015, per: '1m', scope: 'pod', models: ['gpt-4o*'] }] });
    const { pipeline } = setup(p);
    expect((await runRequest(pipeline, exchange(p, 'api.openai.com', CHAT, chat(1000)))).verdict.action).toBe('continue');
    const r = await runRequest(pipeline, exchange(p, 'api.openai.com', CHAT, chat(1000)));
    expect(r.verdict).toMatchObject({ status: 429 });
    expect((r.verdict as { headers: Record<string, string> }).headers['x-ratelimit-limit-tokens']).toBeUndefined();
    const other = await runRequest(pipeline, exchange(p, 'api.openai.com', CHAT, { ...chat(1000), model: 'gpt-4.1-mini' }));
    expect(other.verdict.action).toBe('continue');
    const unpriced = policy({ budgets: [{ usd: 1, per: '1m', scope: 'pod' }] });
    const s2 = setup(unpriced);
    const u = await runRequest(s2.pipeline, exchange(unpriced, 'api.openai.com', CHAT, { ...chat(10), model: 'my-finetune' }));
    expect(u.verdict).toMatchObject({ status: 403, reason: 'budget_price_unknown' });
  });

  it('a Retry-After over a minute tells the SDKs not to sleep through it', async () => {
    const p = policy({ budgets: [{ tokens: 600, per: '1h', scope: 'pod' }] });
    const { pipeline } = setup(p);
    await runRequest(pipeline, exchange(p, 'api.openai.com', CHAT, chat(500)));
    const r = await runRequest(pipeline, exchange(p, 'api.openai.com', CHAT, chat(500)));
    const h = (r.verdict as { headers: Record<string, string> }).headers;
    expect(Number(h['retry-after'])).toBeGreaterThan(3500);
    expect(h['x-should-retry']).toBe('false');
  });

  it('audit mode records would-deny and lets the request pass', async () => {
    const p = policy({ mode: 'audit', budgets: [{ tokens: 50, per: '1m', scope: 'pod' }] });
    const { pipeline } = setup(p);
    const r = await runRequest(pipeline, exchange(p, 'api.openai.com', CHAT, chat(500)));
    expect(r.verdict.action).toBe('continue');
    expect(r.ex.facts.wouldDeny).toBe('budget_request_too_large');
  });

  it('audit mode counts what it lets pass: over-limit requests are recorded as would-refuse and charged what they used', async () => {
    const p = policy({ mode: 'audit', budgets: [{ tokens: 1000, per: '1m', scope: 'pod' }] });
    const { pipeline, registry } = setup(p);
    const first = await runRequest(pipeline, exchange(p, 'api.openai.com', CHAT, chat(500)));
    expect(first.verdict.action).toBe('continue');
    expect(first.ex.facts.budget).toBe('reserved');
    const est = first.ex.results.estimatedInputTokens!;
    // over the budget: enforcement would answer 429; audit lets it pass and says so
    const over = await runRequest(pipeline, exchange(p, 'api.openai.com', CHAT, chat(500)));
    expect(over.verdict.action).toBe('continue');
    expect(over.ex.facts).toMatchObject({ wouldDeny: 'budget_exhausted', budget: 'exhausted' });
    expect(over.ex.actions).toContainEqual(expect.objectContaining({ processor: 'budget', action: 'would-deny', reason: 'budget_exhausted' }));
    expect(await metric(registry, 'aigress_budget_rejections_total', { budget: 'budgets[0]', reason: 'budget_exhausted', mode: 'audit' })).toBe(1);
    expect(await metric(registry, 'aigress_budget_rejections_total', { mode: 'enforce' })).toBe(0);
    expect(await metric(registry, 'aigress_denials_total', { reason: 'budget_exhausted', mode: 'audit' })).toBe(1);
    // both went out: the window counts both (30 settled + 410 charged), not only the one it admitted
    await respond(pipeline, over.ex, 200, JSON_H, [usageBody(10, 400)]);
    await respond(pipeline, first.ex, 200, JSON_H, [usageBody(10, 20)]);
    expect(await metric(registry, 'aigress_budget_remaining', { budget: 'budgets[0]', scope: 'pod' })).toBe(1000 - 30 - 410);
    expect((await runRequest(pipeline, exchange(p, 'api.openai.com', CHAT, chat(500)))).ex.facts.budget).toBe('reserved'); // est + 500 ≤ 560
    const again = await runRequest(pipeline, exchange(p, 'api.openai.com', CHAT, chat(100)));
    expect(again.verdict.action).toBe('continue');
    expect(again.ex.facts.wouldDeny).toBe('budget_exhausted'); // 560 - (est + 500) < est + 100
    expect(est).toBeLessThan(40);
    expect(await metric(registry, 'aigress_budget_rejections_total', { budget: 'budgets[0]', reason: 'budget_exhausted', mode: 'audit' })).toBe(2);
  });

  it('a shared scope without a store fails closed with 503, or open on the local share', async () => {
    const closed = policy({ budgets: [{ tokens: 1000, per: '1m', scope: 'namespace' }] });
    const s1 = setup(closed);
    const r = await runRequest(s1.pipeline, exchange(closed, 'api.openai.com', CHAT, chat(10)));
    expect(r.verdict).toMatchObject({ status: 503, kind: 'unavailable', reason: 'budget_store_unavailable' });
    const open = policy({ budgets: [{ tokens: 1000, per: '1m', scope: 'namespace', onStoreError: 'FailOpen' }] });
    const s2 = setup(open);
    const o = await runRequest(s2.pipeline, exchange(open, 'api.openai.com', CHAT, chat(10)));
    expect(o.verdict.action).toBe('continue');
    expect(o.ex.facts.budget).toBe('fail-open');
    expect(await metric(s2.registry, 'aigress_budget_fail_open_total', { budget: 'budgets[0]' })).toBe(1);
  });
});
