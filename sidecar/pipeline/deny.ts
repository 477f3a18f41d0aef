import type { DenyKind } from '../../shared/providers/types.js';
import type { PipelineContext } from './context.js';
import type { Exchange, RequestVerdict } from './types.js';

/** Why a request was denied; the `reason` label of aigress_denials_total and the `denyReason` log fact. */
export type DenyReason = 'region_not_allowed' | 'region_unknown' | 'model_denied' | 'model_not_allowed' | 'model_unknown';

/** Counts and records a denial and returns the verdict; the proxy answers in the provider's error shape. */
export function deny(ctx: PipelineContext, ex: Exchange, kind: DenyKind, status: number, reason: DenyReason, message: string): RequestVerdict {
  ctx.metrics.denials.inc({ provider: ex.request.adapter.id, reason, ...ctx.identityLabels(ex.identity) });
  ex.facts.decision = 'deny';
  ex.facts.denyReason = reason;
  ex.facts.denyMessage = message;
  return { action: 'deny', kind, status, message };
}

export const CONTINUE: RequestVerdict = Object.freeze({ action: 'continue' });
