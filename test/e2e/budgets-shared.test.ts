import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { OPENAI_HOST, PLAIN_HOST } from './support/fake-provider.js';
import { metricSum } from './support/metrics.js';
import { netnsExec } from './support/netns.js';
import { APPS_DIR } from './support/paths.js';
import { APP, PROXY, PodSession, promptLog } from './support/pod-session.js';
import { Background } from './support/process.js';
import { describeRoot } from './support/require-root.js';
import { redisAvailable } from '../support/redis-server.js';
import { ENV_WORKLOAD } from '../../shared/constants.js';
import { findContainer } from './support/pod-spec.js';

// Shared budgets in the pod played for real: a real redis-server outside the pod (where a cluster's Redis
// would be), the proxy given --redis-url, the unmodified openai SDK as the app. The proxy is restarted in the
// middle: a second proxy process that knows nothing of the first must see what the first spent, for each of
// the shared scopes (namespace, serviceaccount, workload), because the window lives in Redis, not in the proxy.

const KEYS = { openai: 'sk-e2e-app-openai-0000', anthropic: 'sk-ant-e2e-app-0000' };
const MODEL = 'gpt-4o-mini';
const REDIS_PORT = 6379; // the outside namespace is new: nothing else listens there
const REDIS_ADDR = '10.200.0.1'; // the outside end of the pod's veth (support/netns.ts); not loopback, so protected mode is off
const LIMITS = { namespace: 3000, serviceaccount: 5000, workload: 7000 };
/** A short window for another model (the 1m budgets above do not count it): a refusal, then a pass after it. */
const SHORT = { model: 'gpt-4o', limit: 2000 };
const POLICY = `apiVersion: aigress.io/v1alpha1
kind: EgressPolicy
metadata: { name: e2e-budget-shared, namespace: team-a }
spec:
  providers: [openai, anthropic]
  budgets:
    - { tokens: ${LIMITS.namespace}, type: output, per: 1m, scope: namespace }
    - { tokens: ${LIMITS.serviceaccount}, type: output, per: 1m, scope: serviceaccount }
    - { tokens: ${LIMITS.workload}, type: output, per: 1m, scope: workload }
    - { tokens: ${SHORT.limit}, type: output, per: 3s, scope: serviceaccount, models: [${SHORT.model}] }
  unmatchedEgress: passthrough
`;

const DEPLOYMENT = 'e2e-chat';
const HASH = '7d9f8b6c5d';
const WORKLOAD_KEY = `team-a/workload/deployment/${DEPLOYMENT}`;
const { prompt } = promptLog();
const redis = redisAvailable();

describeRoot('shared budgets through a real Redis, across a proxy restart, seen by the unmodified openai SDK', () => {
  const session = new PodSession({
    tmpPrefix: 'aig-e2e-budget-shared-',
    hosts: [OPENAI_HOST, PLAIN_HOST],
    keys: KEYS,
    // Made by a Deployment's ReplicaSet, as the API server shows such a pod: `aigress inject` derives the
    // workload (deployment/<name>) from the owner reference and the pod-template-hash label.
    app: { policy: POLICY, proxyArgs: ['--redis-url', `redis://${REDIS_ADDR}:${REDIS_PORT}`], owner: { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: `${DEPLOYMENT}-${HASH}`, labels: { 'pod-template-hash': HASH } } },
  });
  let server: Background | undefined;
  let redisDir = '';
  const call = (maxTokens: number, text: string, model = MODEL, maxRetries = 0) =>
    session.pod.exec(APP, [process.execPath, join(APPS_DIR, 'openai-budget.mjs'), model, String(maxTokens), String(maxRetries), text], { timeoutMs: 30_000 });
  const outputTokens = (r: { stdout: string }) => (JSON.parse(r.stdout) as { usage: { completion_tokens: number } }).usage.completion_tokens;

  beforeAll(async () => {
    if (!redis.ok) throw new Error(`this suite needs redis-server: ${redis.reason}`);
    await session.start();
    redisDir = mkdtempSync(join(tmpdir(), 'aig-e2e-redis-'));
    const [cmd, args] = netnsExec(session.net.out, ['redis-server', '--port', String(REDIS_PORT), '--bind', REDIS_ADDR, '--save', '', '--appendonly', 'no', '--protected-mode', 'no', '--dir', redisDir]);
    server = new Background(cmd, args);
    await listening(session.net.out, server);
  }, 60_000);
  afterAll(async () => {
    await session.stop();
    if (server?.running) await server.stop(5_000);
    if (redisDir) rmSync(redisDir, { recursive: true, force: true });
  });

  it('injection gives the proxy the owning Deployment as its workload', () => {
    const proxy = findContainer(session.files.pod, PROXY);
    expect(proxy.env?.find((e) => e.name === ENV_WORKLOAD)?.value).toBe(`deployment/${DEPLOYMENT}`);
  });

  it('a restarted proxy sees what the first one spent in every shared scope; past the budget it is 429 and nothing leaves', async () => {
    const first = await session.startProxy();
    const spent = await call(100, prompt('shared first'));
    expect(spent.stderr).toBe('');
    const used1 = outputTokens(spent);
    expect(used1).toBeGreaterThan(0);
    expect(metricSum(await session.metrics(), 'aigress_budget_store_up')).toBe(1);
    // a clean stop returns the proxy's lease and sends its settlements; its window stays in Redis
    expect((await first.stop(10_000)).code).toBe(0);

    await session.startProxy();
    // needs one token more than the namespace budget has left after the first proxy's call: refused, and the
    // refusal counts what the first proxy spent (a proxy-local window would have forgotten it)
    const mark = session.fake.mark();
    const refused = await call(LIMITS.namespace - used1 + 1, prompt('shared refused'));
    expect(refused.code).toBe(1);
    const e = JSON.parse(refused.stderr.trim().split('\n').pop()!) as Record<string, string | number | null>;
    expect(e).toMatchObject({ status: 429, limit: String(LIMITS.namespace), remaining: String(LIMITS.namespace - used1) });
    expect(Number(e.retryAfter)).toBeGreaterThan(50); // the first call's tokens leave a 1m window in about a minute
    expect(session.fake.requestsSince(mark)).toHaveLength(0);

    // one that fits is admitted; each shared scope's gauge then shows both proxies' spend
    const second = await call(50, prompt('shared second'));
    expect(second.stderr).toBe('');
    const used2 = outputTokens(second);
    const m = await session.metrics();
    expect(metricSum(m, 'aigress_budget_remaining', { budget: 'budgets[0]', scope: 'namespace', key: 'team-a' })).toBe(LIMITS.namespace - used1 - used2);
    expect(metricSum(m, 'aigress_budget_remaining', { budget: 'budgets[1]', scope: 'serviceaccount', key: 'team-a/sa/e2e-app' })).toBe(LIMITS.serviceaccount - used1 - used2);
    // the workload budget is keyed by the owning Deployment (AIGRESS_WORKLOAD from injection), not the pod,
    // and counted in Redis across the restart like the others
    expect(metricSum(m, 'aigress_budget_remaining', { budget: 'budgets[2]', scope: 'workload', key: WORKLOAD_KEY })).toBe(LIMITS.workload - used1 - used2);
    const workloadLines = m.split('\n').filter((l) => l.startsWith('aigress_budget_remaining{') && l.includes('scope="workload"'));
    expect(workloadLines).toHaveLength(1);
    expect(workloadLines[0]).toContain(`key="${WORKLOAD_KEY}"`);
    expect(metricSum(m, 'aigress_budget_rejections_total', { budget: 'budgets[0]', reason: 'budget_exhausted', mode: 'enforce' })).toBe(1);
  }, 90_000);

  it('a shared budget past its limit answers 429 with Retry-After; the SDK\'s own retries pass once the window moved', async () => {
    const first = await call(1500, prompt('shared short first'), SHORT.model);
    expect(first.stderr).toBe('');
    const used = outputTokens(first);
    const mark = session.fake.mark();
    const refused = await call(SHORT.limit - 1, prompt('shared short refused'), SHORT.model);
    expect(refused.code).toBe(1);
    const e = JSON.parse(refused.stderr.trim().split('\n').pop()!) as Record<string, string | number | null>;
    expect(e).toMatchObject({ status: 429, limit: String(SHORT.limit), remaining: String(SHORT.limit - used) });
    expect(Number(e.retryAfter)).toBeGreaterThanOrEqual(1);
    expect(Number(e.retryAfter)).toBeLessThanOrEqual(4);
    expect(session.fake.requestsSince(mark)).toHaveLength(0);
    // the same call with the SDK's default retries: it sleeps Retry-After, and Redis's window has moved on
    const retried = await call(SHORT.limit - 1, prompt('shared short retried'), SHORT.model, 2);
    expect(retried.stderr).toBe('');
    expect(retried.code).toBe(0);
    expect(session.fake.requestsSince(mark)).toHaveLength(1);
  }, 60_000);
});

/** Waits until redis-server accepts connections in the outside namespace (the test process is outside both). */
async function listening(ns: string, server: Background): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const [cmd, args] = netnsExec(ns, ['redis-cli', '-h', REDIS_ADDR, '-p', String(REDIS_PORT), 'ping']);
    const probe = new Background(cmd, args);
    const done = await probe.exited;
    if (done.code === 0 && probe.stdout.includes('PONG')) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`redis-server did not answer on ${REDIS_ADDR}:${REDIS_PORT} in namespace ${ns}: ${server.stdout.slice(-500)}${server.stderr.slice(-500)}`);
}
