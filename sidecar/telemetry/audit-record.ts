import type { Usage } from '../../shared/providers/types.js';
import type { PodIdentity, ProcessorAction } from '../pipeline/types.js';

// The audit record: one JSON object per AI call, for a log pipeline or a SIEM. Its schema is versioned by
// `schema` and documented in docs/audit.md; a change that removes or renames a field bumps the version.
// It holds facts about the call and what policy did, never prompt or response text, headers or credentials.

export const AUDIT_SCHEMA = 'aigress.io/audit/v1';

export type AuditLevel = 'info' | 'warn' | 'error';
export type AuditOutcome = 'allow' | 'deny' | 'would-deny' | 'error';

export interface AuditRecord {
  readonly schema: typeof AUDIT_SCHEMA;
  /** When the call ended, ISO 8601 (UTC, milliseconds). */
  readonly time: string;
  /** When the proxy had the request, ISO 8601. */
  readonly startTime: string;
  readonly level: AuditLevel;
  readonly pod: PodIdentity;
  readonly provider: string;
  readonly operation: string;
  readonly host: string;
  /** Absent only for a request refused before its head could be parsed. */
  readonly method?: string;
  /** The upstream path without its query string (which may carry keys); absent as `method`. */
  readonly path?: string;
  readonly region: string;
  readonly stream: boolean;
  readonly model: { readonly requested?: string; readonly served?: string };
  readonly decision: {
    readonly outcome: AuditOutcome;
    /** The bounded reason of the denial (`model_denied`, `region_not_allowed`, …), or of a would-deny. */
    readonly reason?: string;
    /** The processor (rule) that decided. */
    readonly by?: string;
    readonly message?: string;
    /** Absent only for a request refused before the proxy had loaded a policy. */
    readonly policy?: { readonly name: string; readonly generation: number; readonly digest: string };
  };
  /** Every processor action, in order: kinds and counts, never the values found. */
  readonly processors: readonly ProcessorAction[];
  readonly usage?: Usage;
  /** Why usage is absent on a metered call (`not_reported`, `incomplete`, `unreadable`). */
  readonly usageMissing?: string;
  readonly costUsd?: number;
  readonly durationMs: { readonly total: number; readonly upstream?: number; readonly timeToFirstChunk?: number };
  readonly bytes: { readonly request: number; readonly upstreamRequest?: number; readonly response: number; readonly upstreamResponse?: number };
  /** The HTTP status the app got (0: none, the client went away). */
  readonly status: number;
  /** The provider's status, when it answered (differs from `status` when the proxy refused its answer). */
  readonly upstreamStatus?: number;
  readonly upstreamError?: string;
  /** x-request-id (OpenAI, Azure, Mistral), request-id (Anthropic), x-amzn-requestid (Bedrock). */
  readonly providerRequestId?: string;
  readonly traceId: string;
  readonly spanId: string;
}

/** The provider's request id header, if a safe short token (it is provider input: bounded, printable ASCII). */
export function providerRequestId(headers: Readonly<Record<string, string | string[] | undefined>>): string | undefined {
  for (const name of ['x-request-id', 'request-id', 'x-amzn-requestid']) {
    const raw = headers[name];
    const v = Array.isArray(raw) ? raw[0] : raw;
    if (v !== undefined && /^[\x21-\x7e]{1,128}$/.test(v)) return v;
  }
  return undefined;
}

export const levelOf = (o: AuditOutcome): AuditLevel => (o === 'allow' ? 'info' : o === 'error' ? 'error' : 'warn');

/** Milliseconds, rounded to microseconds. */
export const ms = (ns: bigint): number => Math.round(Number(ns) / 1e3) / 1e3;
