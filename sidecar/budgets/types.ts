import type { WindowShape } from './window.js';

// What a budget store does: reserve units of one budget key before a request is forwarded, settle them to what
// the request really cost afterwards. The local store (local.ts) serves scope pod and the FailOpen fallback;
// the Redis store (redis.ts) serves the shared scopes.

/** One budget for one scope key (`namespace team-a`), as the store counts it. */
export interface BudgetKey {
  /** Store key: unique per policy budget and scope key. */
  readonly id: string;
  /** Units per window (tokens, or micro-dollars for usd budgets). */
  readonly limit: number;
  readonly shape: WindowShape;
}

/** A reservation a store made; opaque to the processor, handed back to `settle`. */
export interface Ticket {
  readonly amount: number;
}

export type ReserveOutcome =
  | { readonly ok: true; readonly ticket: Ticket; readonly remaining: number }
  /** Not enough left in the window; `retryAfterMs` undefined when the request is larger than the whole budget. */
  | { readonly ok: false; readonly kind: 'exhausted'; readonly retryAfterMs: number | undefined; readonly remaining: number }
  /** The store cannot be reached; the budget's onStoreError decides. */
  | { readonly ok: false; readonly kind: 'down'; readonly error: string };

export interface BudgetStore {
  reserve(key: BudgetKey, amount: number): ReserveOutcome | Promise<ReserveOutcome>;
  /** Corrects a reservation to what was used (0 when nothing was sent). Never throws; may finish later. */
  settle(key: BudgetKey, ticket: Ticket, used: number): void;
  /** Books units used without a reservation (audit mode: a request the budget would refuse still spends). */
  charge(key: BudgetKey, used: number): void;
  /** Units left in the window as this proxy last saw them (for the gauge); undefined before first use. */
  remaining(key: BudgetKey): number | undefined;
}
