import { Counter, Gauge, type Registry } from 'prom-client';

// The budget metrics (docs/metrics.md), registered once per registry and shared by every pipeline build.

export interface BudgetMetrics {
  readonly remaining: Gauge;
  readonly rejections: Counter;
  readonly reserved: Counter;
  readonly settled: Counter;
  readonly failOpen: Counter;
  readonly storeUp: Gauge;
  readonly storeCalls: Counter;
  readonly restored: Counter;
}

const byRegistry = new WeakMap<Registry, BudgetMetrics>();

function one<T>(registry: Registry, name: string, make: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? make();
}

export function budgetMetrics(registry: Registry): BudgetMetrics {
  let m = byRegistry.get(registry);
  if (m) return m;
  const registers = [registry];
  m = {
    remaining: one(registry, 'aigress_budget_remaining', () => new Gauge({ name: 'aigress_budget_remaining', help: 'Units (tokens, or USD for usd budgets) left in the window, as this proxy last saw it, for the scope keys it serves.', labelNames: ['budget', 'scope', 'key'], registers })),
    rejections: one(registry, 'aigress_budget_rejections_total', () => new Counter({ name: 'aigress_budget_rejections_total', help: 'Requests a budget refused (reason: budget_exhausted, budget_store_unavailable, budget_request_too_large, budget_price_unknown; mode=audit: would have refused, let pass).', labelNames: ['budget', 'scope', 'reason', 'mode'], registers })),
    reserved: one(registry, 'aigress_budget_reserved_tokens_total', () => new Counter({ name: 'aigress_budget_reserved_tokens_total', help: 'Tokens reserved before forwarding (estimate plus output cap), per budget.', labelNames: ['budget', 'scope'], registers })),
    settled: one(registry, 'aigress_budget_settled_tokens_total', () => new Counter({ name: 'aigress_budget_settled_tokens_total', help: 'Tokens the reservations settled to (billed usage; the reservation when usage is missing).', labelNames: ['budget', 'scope'], registers })),
    failOpen: one(registry, 'aigress_budget_fail_open_total', () => new Counter({ name: 'aigress_budget_fail_open_total', help: 'Requests a FailOpen budget decided on its local share because the budget store was unreachable.', labelNames: ['budget', 'scope'], registers })),
    storeUp: one(registry, 'aigress_budget_store_up', () => new Gauge({ name: 'aigress_budget_store_up', help: '1 while the shared budget store (Redis) is connected, 0 while it is not.', labelNames: [], registers })),
    storeCalls: one(registry, 'aigress_budget_store_calls_total', () => new Counter({ name: 'aigress_budget_store_calls_total', help: 'Round trips to the shared budget store (compare with requests: leases keep most requests off it).', labelNames: [], registers })),
    restored: one(registry, 'aigress_budget_store_restores_total', () => new Counter({ name: 'aigress_budget_store_restores_total', help: 'Times this proxy restored its share of a window that the budget store had lost (a Redis restart).', labelNames: [], registers })),
  };
  byRegistry.set(registry, m);
  return m;
}
