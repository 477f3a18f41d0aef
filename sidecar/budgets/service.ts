import { randomBytes } from 'node:crypto';
import type { Registry } from 'prom-client';
import type { Logger } from '../../shared/log.js';
import { LocalBudgetStore } from './local.js';
import { budgetMetrics } from './metrics.js';
import { RedisBudgetStore } from './redis.js';

/** The budget stores of one proxy process (a PipelineServices field): they outlive policy changes. */
export interface BudgetServices {
  /** Scope pod. */
  readonly local: LocalBudgetStore;
  /** Shared scopes; absent without --redis-url (their requests then meet onStoreError). */
  readonly shared?: RedisBudgetStore;
  /** FailOpen budgets' local shares while the shared store is down. */
  readonly fallback: LocalBudgetStore;
  close(): Promise<void>;
}

export interface BudgetServiceOptions {
  registry: Registry;
  log: Logger;
  now: () => number;
  redisUrl?: string;
  redisPassword?: string;
  /** Names this proxy in Redis (its pod name); a random suffix keeps restarts apart. */
  proxyName?: string;
}

export function createBudgetServices(o: BudgetServiceOptions): BudgetServices {
  const m = budgetMetrics(o.registry);
  const shared = o.redisUrl
    ? new RedisBudgetStore({
        url: o.redisUrl,
        ...(o.redisPassword !== undefined && { password: o.redisPassword }),
        proxyId: `${o.proxyName ?? 'proxy'}-${randomBytes(4).toString('hex')}`,
        log: o.log,
        now: o.now,
        onStatus: (up) => m.storeUp.set(up ? 1 : 0),
        onCall: () => m.storeCalls.inc(),
        onRestored: () => m.restored.inc(),
      })
    : undefined;
  return {
    local: new LocalBudgetStore(o.now),
    ...(shared && { shared }),
    fallback: new LocalBudgetStore(o.now),
    close: async () => shared?.close(),
  };
}
