import type { DenyKind } from '../../shared/providers/types.js';
import type { Deny, Verdict } from './types.js';

/** Why a request was denied by the built-in admit steps; the `reason` label of aigress_denials_total. */
export type DenyReason = 'region_not_allowed' | 'region_unknown' | 'model_denied' | 'model_not_allowed' | 'model_unknown';

/** A denial; the runner counts it, records it in the log line and answers in the provider's error shape. */
export function deny(kind: DenyKind, status: number, reason: string, message: string, headers?: Record<string, string>): Deny {
  return { action: 'deny', kind, status, reason, message, ...(headers && { headers }) };
}

export const CONTINUE: Verdict = Object.freeze({ action: 'continue' });
