import type { DenyKind } from '../../shared/providers/types.js';
import type { Deny, Verdict } from './types.js';

/** A denial; the runner counts it, records it in the log line and answers in the provider's error shape. */
export function deny(kind: DenyKind, status: number, reason: string, message: string, headers?: Record<string, string>): Deny {
  return { action: 'deny', kind, status, reason, message, ...(headers && { headers }) };
}

export const CONTINUE: Verdict = Object.freeze({ action: 'continue' });
