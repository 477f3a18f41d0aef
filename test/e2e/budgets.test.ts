import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { OPENAI_HOST, PLAIN_HOST } from './support/fake-provider.js';
import { APPS_DIR } from './support/paths.js';
import { APP, PodSession, promptLog } from './support/pod-session.js';
import { describeRoot } from './support/require-root.js';

// A budget in the pod played for real (test/e2e/README.md): the unmodified openai SDK as the app, UID 1000,
// through the injected proxy's capture, to the fake provider by its real host name. A call past the budget gets
// 429 with Retry-After and the x-ratelimit headers and never reaches the provider; the SDK's own retries, which
// sleep for Retry-After, pass once the window has moved on.

const KEYS = { openai: 'sk-e2e-app-openai-0000', anthropic: 'sk-ant-e2e-app-0000' };
const MODEL = 'gpt-4o-mini';
const POLICY = `apiVersion: aigress.io/v1alpha1
kind: EgressPolicy
metadata: { name: e2e-budget, namespace: team-a }
spec:
  providers: [openai, anthropic]
  budgets: [{ tokens: 3000, type: output, per: 3s, scope: pod }]
  unmatchedEgress: passthrough
`;

const { prompt } = promptLog();

describeRoot('a budget in a pod played for real, seen by the unmodified openai SDK', () => {
  const session = new PodSession({ tmpPrefix: 'aig-e2e-budget-', hosts: [OPENAI_HOST, PLAIN_HOST], keys: KEYS, app: { policy: POLICY } });
  const call = (maxTokens: number, maxRetries: number, text: string) =>
    session.pod.exec(APP, [process.execPath, join(APPS_DIR, 'openai-budget.mjs'), MODEL, String(maxTokens), String(maxRetries), text], { timeoutMs: 30_000 });

  beforeAll(async () => {
    await session.start();
    await session.startProxy();
  });
  afterAll(() => session.stop());

  it('a call past the budget gets 429 with Retry-After and never leaves; the SDK\'s retries pass after the window', async () => {
    // spends some of the 3000 output tokens of the window
    const first = await call(100, 0, prompt('budget first'));
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    const used = (JSON.parse(first.stdout) as { usage: { completion_tokens: number } }).usage.completion_tokens;
    expect(used).toBeGreaterThan(0);
    // needs the whole window's 3000: refused while the first call's tokens are in it
    const mark = session.fake.mark();
    const refused = await call(3000, 0, prompt('budget refused'));
    expect(refused.code).toBe(1);
    const e = JSON.parse(refused.stderr.trim().split('\n').pop()!) as Record<string, string | number | null>;
    expect(e).toMatchObject({ status: 429, limit: '3000', remaining: String(3000 - used) });
    expect(Number(e.retryAfter)).toBeGreaterThanOrEqual(1);
    expect(Number(e.retryAfter)).toBeLessThanOrEqual(4);
    expect(Number(e.retryAfterMs)).toBeLessThanOrEqual(3_000 + 50 + 100);
    expect(session.fake.requestsSince(mark)).toHaveLength(0);
    // the same call with the SDK's default retries: it sleeps Retry-After, then passes
    const retried = await call(3000, 2, prompt('budget retried'));
    expect(retried.stderr).toBe('');
    expect(retried.code).toBe(0);
    expect(session.fake.requestsSince(mark)).toHaveLength(1);
    const m = await session.metrics();
    expect(m).toMatch(/aigress_budget_rejections_total\{budget="budgets\[0\]",scope="pod",reason="budget_exhausted",mode="enforce"\} [1-9]/);
  }, 60_000);
});
