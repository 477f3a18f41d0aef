import type { IncomingHttpHeaders } from 'node:http';
import type { EgressPolicy } from '../../shared/policy/types.js';
import type { ProviderAdapter } from '../../shared/providers/types.js';
import type { PodIdentity } from '../pipeline/types.js';
import { AUDIT_SCHEMA, levelOf, ms, type AuditRecord } from './audit-record.js';
import { STATUS_ERROR } from './otlp-json.js';
import { policyRef } from './processor.js';
import { cleanTracestate, newSpanId, newTraceId, parseTraceparent } from './trace-context.js';
import type { TelemetryServices } from './types.js';

// Requests the proxy refused before the pipeline saw them: 400 (a head it could not parse, two Host fields),
// 408 (the head did not arrive in time), 413 (body over the limit), 421 (Host or request target not the
// connection's host), 431 (header block too large). Each gets an audit record and a span like a pipeline call's, with what is known of it: the host, and
// the method and path when the head was parsed. The body is never read, so no model from it and no content.

export interface Refusal {
  /** The connection's host (TLS SNI, or the first plain-HTTP Host). */
  readonly host: string;
  readonly status: number;
  /** Absent when the request head could not be parsed. */
  readonly method?: string | undefined;
  readonly path?: string | undefined;
  readonly headers?: IncomingHttpHeaders | undefined;
  /** process.hrtime.bigint() when the request head was read. */
  readonly receivedAt?: bigint | undefined;
  /** Body bytes of the refusal the app got. */
  readonly resBytes?: number | undefined;
}

/** The policy in force, as the proxy has it when it refuses (none before the first policy was loaded). */
export interface RefusalContext {
  readonly adapter?: ProviderAdapter | undefined;
  readonly policy?: EgressPolicy | undefined;
}

/** decision.reason of each refusal status. */
export const REFUSAL_REASONS: Readonly<Record<number, string>> = {
  400: 'malformed_request',
  408: 'request_timeout',
  413: 'body_too_large',
  421: 'misdirected',
  431: 'headers_too_large',
};

const first = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[0] : v);

export function recordRefusal(t: TelemetryServices, identity: PodIdentity, r: Refusal, c: RefusalContext): void {
  const endNs = process.hrtime.bigint();
  const endUnixNano = BigInt(Date.now()) * 1_000_000n;
  const startUnixNano = r.receivedAt !== undefined ? endUnixNano - (endNs - r.receivedAt) : endUnixNano;
  const path = r.path === undefined ? undefined : r.path.split('?', 1)[0]!;
  // What the path and host say (operation, region, a model named in the URL: Bedrock, Gemini); the body is unread.
  let described: { operation: string; model?: string | undefined; region?: string | undefined } = { operation: 'unknown' };
  if (c.adapter && r.method !== undefined && r.path !== undefined) {
    try {
      described = c.adapter.describe({ host: r.host, method: r.method, path: r.path, headers: r.headers ?? {}, body: Buffer.alloc(0) }, {});
    } catch {
      // a path the adapter cannot read: operation unknown
    }
  }
  const parent = parseTraceparent(first(r.headers?.traceparent));
  const traceId = parent?.traceId ?? newTraceId();
  const spanId = newSpanId();
  const traceState = parent ? cleanTracestate(first(r.headers?.tracestate)) : undefined;
  const reason = REFUSAL_REASONS[r.status] ?? 'refused';
  const policy = c.policy ? policyRef(c.policy) : undefined;
  const operation = described.operation === 'responses' ? 'chat' : described.operation;
  const model = described.model?.slice(0, 256);

  const otlp = t.otlp;
  if (otlp?.tracing && (!parent || (parseInt(parent.flags, 16) & 1) === 1)) {
    otlp.span({
      traceId,
      spanId,
      ...(parent && { parentSpanId: parent.spanId }),
      ...(traceState && { traceState }),
      name: model ? `${operation} ${model}` : operation,
      startUnixNano,
      endUnixNano,
      attributes: {
        'gen_ai.operation.name': operation,
        'gen_ai.provider.name': c.adapter?.otelName,
        'gen_ai.request.model': model,
        'error.type': String(r.status),
        'server.address': r.host,
        'server.port': 443,
        'http.response.status_code': r.status,
        'aigress.decision': 'deny',
        'aigress.deny.reason': reason,
        'aigress.denied_by': 'proxy',
        'aigress.policy.name': policy?.name,
        'aigress.policy.generation': policy?.generation,
        'aigress.region': described.region,
      },
      status: { code: STATUS_ERROR, message: reason },
    });
  }

  if (t.audit) {
    const record: AuditRecord = {
      schema: AUDIT_SCHEMA,
      time: new Date(Number(endUnixNano / 1_000_000n)).toISOString(),
      startTime: new Date(Number(startUnixNano / 1_000_000n)).toISOString(),
      level: levelOf('deny'),
      pod: identity,
      provider: c.adapter?.id ?? 'unknown',
      operation: described.operation,
      host: r.host,
      ...(r.method !== undefined && { method: r.method }),
      ...(path !== undefined && { path }),
      region: described.region ?? 'unknown',
      stream: false,
      model: model !== undefined ? { requested: model } : {},
      decision: { outcome: 'deny', reason, by: 'proxy', ...(policy && { policy }) },
      processors: [],
      durationMs: { total: r.receivedAt !== undefined ? ms(endNs - r.receivedAt) : 0 },
      bytes: { request: Number(first(r.headers?.['content-length']) ?? 0) || 0, response: r.resBytes ?? 0 },
      status: r.status,
      traceId,
      spanId,
    };
    t.audit.write(record);
  }
}
