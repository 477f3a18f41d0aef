import { createHash } from 'node:crypto';
import { compileGlobs } from '../../shared/glob.js';
import type { Budget, EgressPolicy } from '../../shared/policy/types.js';
import { parseDuration } from '../../shared/policy/validate.js';
import type { PriceEntry } from '../../shared/providers/prices.js';
import type { Operation } from '../../shared/providers/types.js';
import { estimateRequest, type Estimate } from '../budgets/estimate.js';
import { budgetMetrics } from '../budgets/metrics.js';
import { createBudgetServices, type BudgetServices } from '../budgets/service.js';
import type { BudgetKey, BudgetStore, ReserveOutcome, Ticket } from '../budgets/types.js';
import { windowShape } from '../budgets/window.js';
import type { PipelineContext } from './context.js';
import { CONTINUE, deny } from './deny.js';
import type { Deny, EndInfo, Exchange, PipelineServices, PodIdentity, Processor, Verdict } from './types.js';

// spec.budgets (docs/budgets.md): before a request is forwarded, every budget that counts it reserves the
// request's estimate (input tokens plus its output cap, or their price); a budget that cannot cover it answers
// 429 with Retry-After in the provider's shape and nothing leaves the pod. When the exchange ends, each
// reservation settles to the billed usage metering read (onEnd runs after metering's), to the reservation when
// usage is missing, to nothing when nothing was sent or the provider refused.

/** Operations that bill tokens: the ones metering reads usage for. */
const BUDGETED: ReadonlySet<Operation> = new Set(['chat', 'responses', 'embeddings', 'text_completion', 'generate_content']);
const MICRO = 1_000_000;
/** Longest Retry-After an SDK is left to sleep through on its own. */
export const MAX_SDK_WAIT_MS = 65_000; // a 1m budget frees within 61 s: its wait is left to the SDK

interface Compiled {
  readonly b: Budget;
  readonly index: number;
  /** `budgets[0]`: the metric label and the name in messages. */
  readonly label: string;
  readonly hash: string;
  readonly windowMs: number;
  readonly limit: number;
  readonly matchesModel: (name: string) => boolean;
}

interface Held {
  readonly c: Compiled;
  readonly key: BudgetKey;
  readonly scopeKey: string;
  readonly store: BudgetStore;
  /** Absent for a budget that refused in audit mode: nothing is reserved, what the request uses is charged. */
  readonly ticket?: Ticket;
  readonly amount: number;
  /** Tokens this reservation stands for (for the reserved/settled metrics). */
  readonly tokens: number;
}

interface Plan {
  readonly c: Compiled;
  readonly key: BudgetKey;
  readonly scopeKey: string;
  readonly amount: number;
  readonly tokens: number;
}

type Decided = { plan: Plan; store: BudgetStore; outcome: ReserveOutcome; failOpen: boolean };

const fallbackServices = new WeakMap<object, BudgetServices>();
function budgetServices(services: PipelineServices): BudgetServices {
  if (services.budgets) return services.budgets;
  // A pipeline built without the proxy's services (tests): local stores only.
  let s = fallbackServices.get(services);
  if (!s) fallbackServices.set(services, (s = createBudgetServices({ registry: services.registry, log: services.log, now: services.now })));
  return s;
}

/** Which scope key a budget counts this pod under. A workload the pod does not know falls back to the pod. */
export function scopeKey(b: Budget, id: PodIdentity, policy: EgressPolicy): string {
  const ns = id.namespace ?? policy.metadata.namespace ?? 'default';
  const pod = id.pod ?? 'local';
  switch (b.scope) {
    case 'pod':
      return `${ns}/pod/${pod}`;
    case 'workload':
      return id.workload ? `${ns}/workload/${id.workload}` : `${ns}/pod/${pod}`;
    case 'serviceaccount':
      return `${ns}/sa/${id.serviceAccount ?? 'default'}`;
    case 'namespace':
      return ns;
  }
}

/** OpenAI's reset format: `1m30s`, `6s`, `250ms`. */
// OpenAI's own form is Go's duration string ("20ms", "1s", "6m0s", "1h0m0s"): once a larger unit is
// present every smaller one is written, even when zero, so SDKs parsing it see one shape.
export function resetDuration(ms: number): string {
  if (ms < 1000) return `${Math.max(1, Math.ceil(ms))}ms`;
  const s = Math.ceil(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  if (h) return `${h}h${m}m${r}s`;
  if (m) return `${m}m${r}s`;
  return `${r}s`;
}

export function budgetProcessor(ctx: PipelineContext, services: PipelineServices): Processor {
  const stores = budgetServices(services);
  const m = budgetMetrics(services.registry);
  const policy = ctx.policy;
  const budgets: Compiled[] = policy.spec.budgets.map((b, index) => {
    const windowMs = parseDuration(b.per) ?? 60_000;
    const def = JSON.stringify({ policy: ctx.policyName, b: { ...b, onStoreError: undefined } });
    return {
      b,
      index,
      label: `budgets[${index}]`,
      hash: createHash('sha256').update(def).digest('hex').slice(0, 16),
      windowMs,
      limit: b.usd !== undefined ? Math.round(b.usd * MICRO) : b.tokens!,
      matchesModel: b.models && b.models.length > 0 ? compileGlobs(b.models) : () => true,
    };
  });
  const keys = new Map<string, BudgetKey>();
  const keyFor = (c: Compiled, sk: string): BudgetKey => {
    const id = `aigress:budget:{${c.hash}:${sk}}`;
    let k = keys.get(id);
    if (!k) {
      if (keys.size > 10_000) keys.clear();
      keys.set(id, (k = { id, limit: c.limit, shape: windowShape(c.windowMs) }));
    }
    return k;
  };
  let lastOpenLog = 0;

  const applies = (c: Compiled, ex: Exchange): boolean => {
    if (c.b.providers && !c.b.providers.includes(ex.adapter.id)) return false;
    if (!c.b.models || c.b.models.length === 0) return true;
    const d = ex.described;
    if (d.model === undefined) return true; // a model we cannot read may be one the budget counts: count it
    return [d.model, ...(d.modelAliases ?? [])].some(c.matchesModel);
  };

  const units = (c: Compiled, est: Estimate, price: PriceEntry | undefined): { amount: number; tokens: number } | undefined => {
    const tokens = c.b.type === 'input' ? est.input : c.b.type === 'output' ? est.outputCap : est.input + est.outputCap;
    if (c.b.usd === undefined) return { amount: tokens, tokens };
    if (!price) return undefined;
    // Priced as uncached input: a cache hit only makes the call cheaper, settled later.
    return { amount: Math.ceil(est.input * price.input + est.outputCap * price.output), tokens: est.input + est.outputCap };
  };

  const reserveOne = (plan: Plan): Decided | Promise<Decided> => {
    const shared = plan.c.b.scope !== 'pod';
    const store: BudgetStore | undefined = shared ? stores.shared : stores.local;
    const onDown = (error: string): Decided => {
      if (plan.c.b.onStoreError !== 'FailOpen' || !shared) {
        return { plan, store: store ?? stores.fallback, outcome: { ok: false, kind: 'down', error }, failOpen: false };
      }
      // FailOpen: this proxy's share of the budget, counted locally until the store is back.
      const share = stores.shared ? stores.shared.share(plan.key) : plan.key.limit;
      const key: BudgetKey = { id: `${plan.key.id}:local`, limit: share, shape: plan.key.shape };
      m.failOpen.inc({ budget: plan.c.label, scope: plan.c.b.scope });
      const now = Date.now();
      if (now - lastOpenLog > 10_000) {
        lastOpenLog = now;
        services.log.warn({ budget: plan.c.label, scope: plan.c.b.scope, share, err: error }, 'budget store unreachable; FailOpen budget uses this proxy\'s local share');
      }
      return { plan: { ...plan, key }, store: stores.fallback, outcome: stores.fallback.reserve(key, plan.amount), failOpen: true };
    };
    if (!store) return onDown('no budget store configured (--redis-url)');
    const o = store.reserve(plan.key, plan.amount);
    const decide = (outcome: ReserveOutcome): Decided =>
      outcome.ok || outcome.kind !== 'down' ? { plan, store, outcome, failOpen: false } : onDown(outcome.error);
    return o instanceof Promise ? o.then(decide) : decide(o);
  };

  const self: Processor = {
    name: 'budget',
    type: 'budget',
    phase: 'admit',
    audit: ctx.audit,
    onRequest(ex): Verdict | Promise<Verdict> {
      if (!BUDGETED.has(ex.described.operation)) return CONTINUE;
      const applicable = budgets.filter((c) => applies(c, ex));
      if (applicable.length === 0) return CONTINUE;
      const d = ex.described;
      const est = estimateRequest(ex.adapter.id, d, ex.request.body.json(), ex.adapter.codec?.(d));
      ex.results.estimatedInputTokens = est.input;
      const names = [d.model, ...(d.modelAliases ?? [])].filter((n): n is string => n !== undefined);
      const price = applicable.some((c) => c.b.usd !== undefined) && names.length > 0 ? ctx.prices.lookup(ex.adapter.id, names) : undefined;
      const plans: Plan[] = [];
      for (const c of applicable) {
        const u = units(c, est, price);
        if (!u) {
          m.rejections.inc({ budget: c.label, scope: c.b.scope, reason: 'budget_price_unknown', mode: ctx.audit ? 'audit' : 'enforce' });
          return deny('policy', 403, 'budget_price_unknown',
            `aigress: ${c.label} of policy ${ctx.policyName} counts USD, and the price of model "${d.model ?? 'unknown'}" is not in the price table (add it under spec.metering.prices)`);
        }
        const sk = scopeKey(c.b, ex.identity, policy);
        plans.push({ c, key: keyFor(c, sk), scopeKey: sk, ...u });
      }
      const decided = plans.map(reserveOne);
      if (decided.some((x) => x instanceof Promise)) return Promise.all(decided).then((all) => conclude(ex, est, all));
      return conclude(ex, est, decided as Decided[]);
    },
    onEnd(ex, end) {
      const held = ex.slot<Held[] | undefined>(self, () => undefined);
      if (!held) return;
      let settledTokens = 0;
      for (const h of held) {
        const used = usedUnits(h, ex, end);
        if (h.ticket) {
          h.store.settle(h.key, h.ticket, used.amount);
          m.settled.inc({ budget: h.c.label, scope: h.c.b.scope }, used.tokens);
        } else h.store.charge(h.key, used.amount);
        settledTokens = Math.max(settledTokens, used.tokens);
        setRemaining(h);
      }
      ex.facts.budgetSettledTokens = settledTokens;
    },
  };

  const setRemaining = (h: { c: Compiled; key: BudgetKey; scopeKey: string; store: BudgetStore }): void => {
    const r = h.store.remaining(h.key);
    if (r !== undefined) m.remaining.set({ budget: h.c.label, scope: h.c.b.scope, key: h.scopeKey }, h.c.b.usd !== undefined ? r / MICRO : r);
  };

  function conclude(ex: Exchange, est: Estimate, all: readonly Decided[]): Verdict {
    const refused = all.filter((x) => !x.outcome.ok);
    if (refused.length > 0 && !ctx.audit) {
      // The strictest decides: release what the others reserved, answer for the one that refused.
      for (const x of all) if (x.outcome.ok) x.store.settle(x.plan.key, x.outcome.ticket, 0);
      return refusal(ex, refused);
    }
    // Audit mode lets a refused request pass (the runner records would-deny): the budgets that admitted it keep
    // their reservations, and the ones that refused it charge what it uses at the end, so the window counts
    // the traffic that really went out and keeps telling what enforcement would refuse.
    const held: Held[] = all.map((x) => ({ c: x.plan.c, key: x.plan.key, scopeKey: x.plan.scopeKey, store: x.store, ...(x.outcome.ok && { ticket: x.outcome.ticket }), amount: x.plan.amount, tokens: x.plan.tokens }));
    ex.slot(self, () => held);
    let reserved = 0;
    for (const h of held) {
      if (!h.ticket) continue;
      m.reserved.inc({ budget: h.c.label, scope: h.c.b.scope }, h.tokens);
      reserved = Math.max(reserved, h.tokens);
      setRemaining(h);
    }
    const f = ex.facts;
    f.budgetReservedTokens = reserved;
    f.budgetEstimate = est.method;
    if (refused.length > 0) return refusal(ex, refused);
    f.budget = all.some((x) => x.failOpen) ? 'fail-open' : 'reserved';
    ex.actions.push({ processor: 'budget', type: 'budget', phase: 'admit', action: all.some((x) => x.failOpen) ? 'fail-open' : 'reserve' });
    return CONTINUE;
  }

  /** The refusal (in audit mode the runner records it as would-deny and the request goes on). */
  function refusal(ex: Exchange, refused: readonly Decided[]): Deny {
    const mode = ctx.audit ? 'audit' : 'enforce';
    const exhausted = refused.filter((x) => !x.outcome.ok && x.outcome.kind === 'exhausted');
    if (exhausted.length === 0) {
      const x = refused[0]!;
      const why = !x.outcome.ok && x.outcome.kind === 'down' ? x.outcome.error : 'unavailable';
      m.rejections.inc({ budget: x.plan.c.label, scope: x.plan.c.b.scope, reason: 'budget_store_unavailable', mode });
      ex.facts.budget = 'store-unavailable';
      return deny('unavailable', 503, 'budget_store_unavailable',
        `aigress: the budget store for ${x.plan.c.label} (scope ${x.plan.c.b.scope}) of policy ${ctx.policyName} cannot be reached (${why}) and the budget fails closed (onStoreError: FailClosed); nothing was sent`);
    }
    const never = exhausted.find((x) => !x.outcome.ok && x.outcome.kind === 'exhausted' && x.outcome.retryAfterMs === undefined);
    if (never) {
      m.rejections.inc({ budget: never.plan.c.label, scope: never.plan.c.b.scope, reason: 'budget_request_too_large', mode });
      ex.facts.budget = 'too-large';
      return deny('policy', 403, 'budget_request_too_large',
        `aigress: this request needs ${fmt(never.plan.c, never.plan.amount)} (input estimate plus its output cap), more than ${never.plan.c.label} of policy ${ctx.policyName} allows per ${never.plan.c.b.per} (${fmt(never.plan.c, never.plan.c.limit)}); lower max_tokens`);
    }
    // The budget that frees last is the one that decides when to come back.
    let worst = exhausted[0]!;
    for (const x of exhausted) if (retryMs(x) > retryMs(worst)) worst = x;
    const c = worst.plan.c;
    const ms = retryMs(worst);
    const remaining = !worst.outcome.ok && worst.outcome.kind === 'exhausted' ? worst.outcome.remaining : 0;
    m.rejections.inc({ budget: c.label, scope: c.b.scope, reason: 'budget_exhausted', mode });
    ex.facts.budget = 'exhausted';
    ex.facts.budgetRetryAfterMs = ms;
    const headers: Record<string, string> = { 'retry-after': String(Math.max(1, Math.ceil(ms / 1000))), 'retry-after-ms': String(Math.ceil(ms)) };
    // The OpenAI and Anthropic SDKs sleep for exactly Retry-After before each of their retries (two by default);
    // much past a minute that would hang the app's call, so they are told not to retry and the app sees the 429.
    if (ms > MAX_SDK_WAIT_MS) headers['x-should-retry'] = 'false';
    if (c.b.usd === undefined) {
      if (ex.adapter.id === 'anthropic') {
        headers['anthropic-ratelimit-tokens-limit'] = String(c.limit);
        headers['anthropic-ratelimit-tokens-remaining'] = String(remaining);
        headers['anthropic-ratelimit-tokens-reset'] = new Date(Date.now() + ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
      } else {
        headers['x-ratelimit-limit-tokens'] = String(c.limit);
        headers['x-ratelimit-remaining-tokens'] = String(remaining);
        headers['x-ratelimit-reset-tokens'] = resetDuration(ms);
      }
    }
    return deny('budget', 429, 'budget_exhausted',
      `aigress: ${c.label} of policy ${ctx.policyName} (${fmt(c, c.limit)} per ${c.b.per}, scope ${c.b.scope}) cannot cover this request (needs ${fmt(c, worst.plan.amount)}, ${fmt(c, remaining)} left); retry in ${Math.max(1, Math.ceil(ms / 1000))} s`,
      headers);
  }

  return self;
}

const retryMs = (x: Decided): number => (!x.outcome.ok && x.outcome.kind === 'exhausted' ? (x.outcome.retryAfterMs ?? Infinity) : 0);
const fmt = (c: Compiled, units: number): string => (c.b.usd !== undefined ? `$${(units / MICRO).toFixed(4)}` : `${units} ${c.b.type ? `${c.b.type} ` : ''}tokens`);

/** What a reservation settles to, in the budget's units and in tokens. */
function usedUnits(h: Held, ex: Exchange, end: EndInfo): { amount: number; tokens: number } {
  if (!end.forwarded) return { amount: 0, tokens: 0 };
  const u = ex.results.usage;
  if (u && (u.input !== undefined || u.output !== undefined)) {
    const input = u.input ?? 0;
    const output = u.output ?? 0;
    const tokens = h.c.b.type === 'input' ? input : h.c.b.type === 'output' ? output : input + output;
    if (h.c.b.usd === undefined) return { amount: tokens, tokens };
    const cost = ex.results.costUsd;
    return { amount: cost === undefined ? h.amount : Math.ceil(cost * MICRO), tokens: input + output };
  }
  // The provider refused (4xx/5xx): no tokens are billed. A success without readable usage, or a response
  // that broke off, keeps its reservation (metering counts it in aigress_usage_missing_total).
  if (end.status >= 400) return { amount: 0, tokens: 0 };
  return { amount: h.amount, tokens: h.tokens };
}
