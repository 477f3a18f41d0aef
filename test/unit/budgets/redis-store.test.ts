// The Redis budget store against a real redis-server: atomic reservations, leases, keys that expire, Retry-After
// on Redis's clock, an outage both ways (FailClosed 503, FailOpen local share) and the restore after a restart.
import { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createLogger } from '../../../shared/log.js';
import { REFUSAL_CACHE_MS, RedisBudgetStore } from '../../../sidecar/budgets/redis.js';
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

  it('a refusal storm is answered from the last refusal: no round trip, yet right after own refunds, other proxies\' and the window moving', async () => {
    const k = key(1_000, 60_000); // 1 s buckets: the cache lives REFUSAL_CACHE_MS, well inside one
    const a = await store('a5');
    const b = await store('b5');
    const held = await a.reserve(k, 950);
    expect(held.ok).toBe(true);
    const first = (await a.reserve(k, 100)) as Extract<ReserveOutcome, { kind: 'exhausted' }>;
    expect(first).toMatchObject({ ok: false, kind: 'exhausted', remaining: 50 });
    const calls = a.calls;
    const storm = await Promise.all(Array.from({ length: 50 }, () => a.reserve(k, 60 + Math.floor(Math.random() * 100))));
    expect(storm.every((o) => !o.ok && o.kind === 'exhausted')).toBe(true);
    expect(a.calls).toBe(calls); // none of them asked Redis
    expect(a.refusalsServed).toBe(50);
    // the cached answer says the same as Redis: remaining and when the request fits again
    const s0 = storm[0] as Extract<ReserveOutcome, { kind: 'exhausted' }>;
    expect(s0.remaining).toBe(50);
    expect(s0.retryAfterMs).toBeGreaterThan(59_000);
    expect(s0.retryAfterMs).toBeLessThanOrEqual(first.retryAfterMs!);
    // a request that fits what was left is never refused from the cache
    expect((await a.reserve(k, 40)).ok).toBe(true);
    // this proxy's own refund drops the cached refusal at once
    if (held.ok) a.settle(k, held.ticket, 500);
    expect((await a.reserve(k, 100)).ok).toBe(true);
    // another proxy's refund: b's cached refusal is gone once REFUSAL_CACHE_MS has passed (plus the flush)
    const big = await a.reserve(k, 300);
    expect(big.ok).toBe(true);
    expect((await b.reserve(k, 300)).ok).toBe(false);
    if (big.ok) a.settle(k, big.ticket, 0);
    await sleep(REFUSAL_CACHE_MS + 150);
    expect((await b.reserve(k, 300)).ok).toBe(true);
  });

  it('a request only other proxies\' unspent leases stand in the way of waits for them, and is admitted', async () => {
    const k = key(10_000);
    const a = await store('a7');
    const b = await store('b7');
    expect((await a.reserve(k, 100)).ok).toBe(true); // a now holds a lease of a tenth of the budget
    expect(a.remaining(k)).toBeGreaterThan(8_900);
    // b needs more than Redis has unleased, less than that plus a's lease: it is asked again once a's lease
    // has come back (a lease lives 1 s), not refused (it was, when the retry was sent at once)
    const o = await b.reserve(k, 9_500);
    expect(o.ok).toBe(true);
  });

  it('a charge (audit mode\'s refused request that went out) counts for every proxy', async () => {
    const k = key(1_000);
    const a = await store('a8');
    const b = await store('b8');
    expect((await a.reserve(k, 800)).ok).toBe(true);
    a.charge(k, 150);
    await sleep(150); // the settlement flush
    expect(await b.reserve(k, 100)).toMatchObject({ ok: false, kind: 'exhausted', remaining: 50 });
  });

  it('a lease lives from when its call was sent, so a slow answer cannot stretch it past its bucket', async () => {
    let clock = 1_000_000;
    const a = await store('a-lease', { now: () => clock, leaseTtlMs: 1_000 });
    const k = key(100_000, 3_600_000);
    const pending = a.reserve(k, 10);
    clock += 900; // the answer arrives 900 ms (proxy clock) after the call was sent
    expect((await pending).ok).toBe(true);
    // the lease is spent locally within its life…
    let calls = a.calls;
    expect((await a.reserve(k, 10)).ok).toBe(true);
    expect(a.calls).toBe(calls);
    // …which ended 1 s after the call was sent, not 1 s after the answer
    clock += 200;
    calls = a.calls;
    expect((await a.reserve(k, 10)).ok).toBe(true);
    expect(a.calls).toBeGreaterThan(calls);
  });

  it('prunes the markers of proxies that stopped calling (each restart is a new id), once their spend left the window', async () => {
    const k = key(500, 1_000); // buckets of 16 ms, 63 back: a marker goes 65 buckets (1 040 ms) after its last call
    const gone = new RedisBudgetStore({ url: server.url, proxyId: 'gone', log: quiet });
    expect(await gone.connected()).toBe(true);
    const restored: string[] = [];
    const live = await store('live', { onRestored: (id) => restored.push(id) });
    expect((await gone.reserve(k, 100)).ok).toBe(true);
    await gone.close();
    expect((await live.reserve(k, 100)).ok).toBe(true);
    const r = new Redis(server.url);
    const markers = async () => Object.keys(await r.hgetall(k.id)).filter((f) => f.startsWith('m:')).sort();
    expect(await markers()).toEqual(['m:gone', 'm:live']);
    await sleep(1_200);
    expect((await live.reserve(k, 100)).ok).toBe(true);
    expect(await markers()).toEqual(['m:live']);
    // the live proxy's own marker stayed: Redis still knows its contribution, nothing was restored twice
    expect((await live.reserve(k, 100)).ok).toBe(true);
    expect(restored).toEqual([]);
    r.disconnect();
  });

  it('a cached refusal ends with its bucket, so capacity leaving the window is seen at once', async () => {
    const k = key(500, 1_000); // buckets of 16 ms: shorter than REFUSAL_CACHE_MS
    const a = await store('a6');
    expect((await a.reserve(k, 500)).ok).toBe(true);
    expect((await a.reserve(k, 100)).ok).toBe(false);
    await sleep(1_100); // the window moved past the spend; the refusal's bucket is long over
    const calls = a.calls;
    expect((await a.reserve(k, 100)).ok).toBe(true);
    expect(a.calls).toBe(calls + 1);
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
