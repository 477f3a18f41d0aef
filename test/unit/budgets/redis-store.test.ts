// The Redis budget store against a real redis-server: atomic reservations, leases, keys that expire, Retry-After
// on Redis's clock, an outage both ways (FailClosed 503, FailOpen local share) and the restore after a restart.
import { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createLogger } from '../../../shared/log.js';
import { RedisBudgetStore } from '../../../sidecar/budgets/redis.js';
import { createBudgetServices } from '../../../sidecar/budgets/service.js';
import type { BudgetKey, ReserveOutcome } from '../../../sidecar/budgets/types.js';
import { windowShape } from '../../../sidecar/budgets/window.js';
import { describeRedis, startRedis, type RedisServer } from '../../support/redis-server.js';
import { captureLogger } from '../../support/log.js';
import { exchange, metric, policy, runRequest, withRegistry } from '../pipeline/harness.js';
import { buildPipeline } from '../../../sidecar/pipeline/index.js';

const quiet = createLogger('test', { level: 'silent' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let n = 0;
const key = (limit: number, windowMs = 60_000): BudgetKey => ({ id: `aigress:budget:{test-${process.pid}-${++n}}`, limit, shape: windowShape(windowMs) });

describeRedis('Redis budget store', () => {
  let server: RedisServer;
  const stores: RedisBudgetStore[] = [];
  const store = async (id: string, opts: Partial<ConstructorParameters<typeof RedisBudgetStore>[0]> = {}): Promise<RedisBudgetStore> => {
    const s = new RedisBudgetStore({ url: server.url, proxyId: id, log: quiet, ...opts });
    stores.push(s);
    expect(await s.connected()).toBe(true);
    return s;
  };
  beforeAll(async () => {
    server = await startRedis();
  });
  afterAll(async () => {
    await Promise.all(stores.map((s) => s.close()));
    await server.close();
  });

  it('admits exactly what the budget holds across proxies, with leases keeping most requests off Redis', async () => {
    const k = key(10_000);
    const a = await store('a');
    const b = await store('b');
    const callsBefore = a.calls + b.calls;
    const all = await Promise.all(Array.from({ length: 200 }, (_, i) => (i % 2 ? a : b).reserve(k, 100)));
    const ok = all.filter((o) => o.ok).length;
    expect(ok).toBe(100); // 100 × 100 = the whole budget, not one more
    const calls = a.calls + b.calls - callsBefore;
    expect(calls).toBeLessThan(200); // fewer round trips than requests
    // what Redis holds is the budget: spent buckets sum to the limit
    const r = new Redis(server.url);
    const h = await r.hgetall(k.id);
    const spent = Object.entries(h).filter(([f]) => /^\d+$/.test(f)).reduce((s, [, v]) => s + Number(v), 0);
    expect(spent).toBe(10_000);
    const ttl = await r.pttl(k.id);
    expect(ttl).toBeGreaterThan(60_000);
    expect(ttl).toBeLessThanOrEqual(60_000 + 3_000 + 30_000);
    r.disconnect();
  });

  it('settling returns capacity to every proxy; a refusal says when capacity returns, on Redis time', async () => {
    const k = key(1_000, 6_000);
    const a = await store('a2');
    const b = await store('b2');
    const first = await a.reserve(k, 900);
    expect(first.ok).toBe(true);
    const refused = (await b.reserve(k, 200)) as Extract<ReserveOutcome, { kind: 'exhausted' }>;
    expect(refused).toMatchObject({ ok: false, kind: 'exhausted' });
    expect(refused.retryAfterMs).toBeGreaterThan(5_900);
    expect(refused.retryAfterMs).toBeLessThanOrEqual(6_000 + 100 + 50);
    if (first.ok) a.settle(k, first.ticket, 300);
    await sleep(150); // the settlement flush
    expect((await b.reserve(k, 600)).ok).toBe(true);
    expect((await b.reserve(k, 2_000))).toMatchObject({ ok: false, kind: 'exhausted', retryAfterMs: undefined });
  });

  it('the window slides: spent capacity comes back after the window, not before', async () => {
    const k = key(500, 1_000);
    const a = await store('a3');
    expect((await a.reserve(k, 500)).ok).toBe(true);
    expect((await a.reserve(k, 1)).ok).toBe(false);
    await sleep(600);
    expect((await a.reserve(k, 1)).ok).toBe(false);
    await sleep(600);
    expect((await a.reserve(k, 400)).ok).toBe(true);
  });

  it('Redis down: FailClosed answers 503, FailOpen uses the local share; store_up shows it; a restart restores the window', async () => {
    const registry = new Registry();
    const cap = captureLogger();
    const services = createBudgetServices({ registry, log: cap.log, now: Date.now, redisUrl: server.url, proxyName: 'pod-a' });
    expect(await services.shared!.connected()).toBe(true);
    const p = policy({ budgets: [
      { tokens: 100_000, per: '1m', scope: 'namespace', onStoreError: 'FailClosed', models: ['gpt-4o'] },
      { tokens: 100_000, per: '1m', scope: 'namespace', onStoreError: 'FailOpen', models: ['gpt-4o-mini'] },
    ] }, `outage-${process.pid}`);
    const pipeline = withRegistry(buildPipeline(p, { registry, log: cap.log, now: Date.now, budgets: services }), registry);
    const req = (model: string) => exchange(p, 'api.openai.com', '/v1/chat/completions', { model, max_tokens: 100, messages: [{ role: 'user', content: 'hi' }] });
    expect((await runRequest(pipeline, req('gpt-4o'))).verdict.action).toBe('continue');
    expect(await metric(registry, 'aigress_budget_store_up')).toBe(1);
    await server.stop();
    for (let i = 0; i < 50 && services.shared!.up; i++) await sleep(20);
    expect(await metric(registry, 'aigress_budget_store_up')).toBe(0);
    // spend the lease first (it holds capacity reserved before the outage), then the store decides
    let closed;
    for (let i = 0; i < 2000; i++) {
      closed = await runRequest(pipeline, req('gpt-4o'));
      if (closed.verdict.action !== 'continue') break;
    }
    expect(closed!.verdict).toMatchObject({ status: 503, kind: 'unavailable', reason: 'budget_store_unavailable' });
    const open = await runRequest(pipeline, req('gpt-4o-mini'));
    expect(open.verdict.action).toBe('continue');
    expect(open.ex.facts.budget).toBe('fail-open');
    expect(await metric(registry, 'aigress_budget_fail_open_total', { budget: 'budgets[1]' })).toBe(1);
    expect(cap.text()).toContain('FailOpen budget uses this proxy');
    await server.start();
    for (let i = 0; i < 100 && !services.shared!.up; i++) await sleep(50);
    expect(services.shared!.up).toBe(true);
    expect(await metric(registry, 'aigress_budget_store_up')).toBe(1);
    // the first call after the restart restores this proxy's share of the window, then waits out the grace
    const again = await runRequest(pipeline, req('gpt-4o'));
    expect(again.verdict.action).toBe('continue');
    expect(await metric(registry, 'aigress_budget_store_restores_total')).toBeGreaterThanOrEqual(1);
    expect(cap.text()).toContain('restored this proxy');
    await services.close();
  });
});
