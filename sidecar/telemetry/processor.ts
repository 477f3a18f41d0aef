import { createHash } from 'node:crypto';
import type { EgressPolicy } from '../../shared/policy/types.js';
import { isObj } from '../../shared/json.js';
import type { PipelineContext } from '../pipeline/context.js';
import { CONTINUE } from '../pipeline/deny.js';
import { redactRestored } from '../pipeline/filters/redaction-map.js';
import type { StreamEvent } from '../pipeline/framing.js';
import type { EndInfo, Exchange, Framing, PipelineServices, Processor, ResponseHead, ResponseHooks } from '../pipeline/types.js';
import { AUDIT_SCHEMA, levelOf, ms, providerRequestId, type AuditOutcome, type AuditRecord } from './audit-record.js';
import { FinishReasons, MAY_HOLD_REASON } from './finish-reasons.js';
import { STATUS_ERROR, STATUS_UNSET, type AttrValue, type SpanData } from './otlp-json.js';
import { cleanTracestate, formatTraceparent, newSpanId, newTraceId, parseTraceparent, signatureCovers } from './trace-context.js';
import type { TelemetryServices } from './types.js';

// The telemetry processors: built only when OTLP export or the audit log is enabled (otherwise the pipeline has
// none and pays nothing). `telemetry` (describe phase) starts the call's span and ends it in onEnd (which runs
// after metering's, so usage, response model and cost are in `ex.results`), recording the GenAI histograms and
// writing the audit record; `trace-context` (credentials phase: after every transform, before any signature)
// sets the provider call's `traceparent` and, when asked, captures the request content as it goes upstream. The
// completion is captured from what the app receives (the runner's `delivered` hooks, after every response filter),
// with the values a pii filter restored for the app redacted again: both directions carry the redactions.

/** Bodies of non-streamed responses read for finish reasons (and captured content) up to this size. */
const MAX_READ_BODY = 4 * 1024 * 1024;
/** Captured content per message, per direction. */
const MAX_CONTENT = 64 * 1024;
/**
 * Completion text read before restored values are redacted again and the result cut to MAX_CONTENT: the margin
 * keeps a value at the cut whole (redaction matches whole values only).
 */
const MAX_OUTPUT_READ = 2 * MAX_CONTENT;
/** Stream chunk intervals kept per call for time_per_output_chunk. */
const MAX_INTERVALS = 20_000;
const HTTPS_PORT = 443;

const otelOperation = (op: string): string => (op === 'responses' ? 'chat' : op);
const hr = (): bigint => process.hrtime.bigint();

interface Call {
  readonly startUnixNano: bigint;
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId?: string;
  readonly traceState?: string;
  readonly sampled: boolean;
  sentAt?: bigint;
  headersAt?: bigint;
  firstChunkAt?: bigint;
  lastChunkAt?: bigint;
  lastEventAt?: bigint;
  intervals: number[];
  upstreamRequestBytes?: number;
  upstreamResponseBytes: number;
  upstreamStatus?: number;
  requestId?: string;
  finish: FinishReasons;
  body?: Buffer[];
  bodySize: number;
  inputMessages?: string;
  output: string[];
  outputLength: number;
}

/** Generation and digest of each policy this proxy built, per services (one proxy). */
const generations = new WeakMap<object, { n: number }>();
/** The policy reference of each policy document built, for records of requests refused before the pipeline. */
const policyRefs = new WeakMap<EgressPolicy, NonNullable<AuditRecord['decision']['policy']>>();

/** The name, generation and digest recorded for `policy`, once a pipeline was built for it. */
export const policyRef = (policy: EgressPolicy): AuditRecord['decision']['policy'] | undefined => policyRefs.get(policy);

export function policyDigest(policy: EgressPolicy): string {
  return `sha256:${createHash('sha256').update(JSON.stringify(policy)).digest('hex').slice(0, 16)}`;
}

export function telemetryProcessors(ctx: PipelineContext, services: PipelineServices): Processor[] {
  const t = services.telemetry;
  if (!t || (!t.otlp && !t.audit)) return [];
  let g = generations.get(t);
  if (!g) generations.set(t, (g = { n: 0 }));
  const policy = { name: ctx.policyName, generation: ++g.n, digest: policyDigest(ctx.policy) };
  policyRefs.set(ctx.policy, policy);
  const tracing = t.otlp?.tracing === true;

  const start: Processor = {
    name: 'telemetry',
    type: 'telemetry',
    phase: 'describe',
    onRequest(ex) {
      const parent = parseTraceparent(ex.request.headers.get('traceparent'));
      const sinceStart = hr() - ex.startedAt;
      const call: Call = {
        startUnixNano: BigInt(services.now()) * 1_000_000n - sinceStart,
        traceId: parent?.traceId ?? newTraceId(),
        spanId: newSpanId(),
        ...(parent && { parentSpanId: parent.spanId }),
        ...(parent && { traceState: cleanTracestate(ex.request.headers.get('tracestate')) }),
        // Parent-based sampling: an app that did not sample its trace does not get a proxy span exported either.
        sampled: parent ? (parseInt(parent.flags, 16) & 1) === 1 : true,
        intervals: [],
        upstreamResponseBytes: 0,
        finish: new FinishReasons(),
        bodySize: 0,
        output: [],
        outputLength: 0,
      };
      ex.slot(start, () => call);
      return CONTINUE;
    },
    onResponse(ex, head, framing) {
      const call = ex.slot<Call | undefined>(start, () => undefined);
      return call ? responseHooks(t, ex, call, head, framing) : undefined;
    },
    async onEnd(ex, end) {
      const call = ex.slot<Call | undefined>(start, () => undefined);
      if (!call) return;
      // After every synchronous onEnd of this exchange (metering writes usage, response model and cost there),
      // whatever order the runner calls them in.
      await Promise.resolve();
      finishCall(ctx, t, ex, end, call, policy);
    },
  };

  const propagate: Processor = {
    name: 'trace-context',
    type: 'telemetry',
    phase: 'credentials',
    onRequest(ex) {
      const call = ex.slot<Call | undefined>(start, () => undefined);
      if (!call) return CONTINUE;
      call.sentAt = hr();
      call.upstreamRequestBytes = ex.request.body.length;
      const h = ex.request.headers;
      // Only when spans are exported (a context nobody records is noise), and never when the app's own SigV4
      // signature covers the header: the provider would reject the changed request.
      const path = ex.request.path;
      if (tracing && !signatureCovers(h, 'traceparent', path) && !signatureCovers(h, 'tracestate', path)) {
        h.set('traceparent', formatTraceparent({ traceId: call.traceId, spanId: call.spanId, flags: call.sampled ? '01' : '00' }));
        if (call.traceState) h.set('tracestate', call.traceState);
        else h.delete('tracestate');
      }
      if (t.captureContent && tracing) call.inputMessages = requestContent(ex);
      return CONTINUE;
    },
  };
  return [start, propagate];
}

function responseHooks(t: TelemetryServices, ex: Exchange, call: Call, head: ResponseHead, framing: Framing): ResponseHooks {
  call.headersAt = hr();
  call.upstreamStatus = head.status;
  const id = providerRequestId(head.headers);
  if (id !== undefined) call.requestId = id;
  const ok = head.status >= 200 && head.status < 300;
  const stream = framing === 'sse' || framing === 'eventstream';
  // Finish reasons and content are for spans only: an audit-only proxy reads no response body.
  const spans = t.otlp?.tracing === true;
  const capture = spans && t.captureContent && ok;
  const readBody = spans && ok && !stream && (framing === 'json' || framing === 'other');
  if (readBody) call.body = [];
  const keep = (chunk: Buffer): void => {
    if (!call.body) return;
    call.bodySize += chunk.length;
    if (call.bodySize > MAX_READ_BODY) call.body = undefined;
    else call.body.push(chunk);
  };
  return {
    bytes(chunk) {
      if (chunk.length === 0) return;
      const now = hr();
      call.firstChunkAt ??= now;
      call.lastChunkAt = now;
      call.upstreamResponseBytes += chunk.length;
      if (!capture) keep(chunk);
    },
    // Captured content is read from what the app receives (after every response filter: their redactions and
    // blocks apply), not from the upstream bytes; finish reasons then come from the same body.
    ...(capture && !stream && { delivered: keep }),
    ...(capture && stream && {
      deliveredEvent(ev: StreamEvent) {
        const doc = eventDoc(ev);
        if (isObj(doc)) streamContent(ex, call, doc, ev);
      },
    }),
    // Events are framed for this only when something uses them (spans, the per-chunk histogram).
    ...(stream && (spans || t.otlp?.genAi) && {
      observe(ev: StreamEvent) {
        if (!ev.sse && !ev.message) return;
        const now = hr();
        if (t.otlp?.genAi && call.lastEventAt !== undefined && call.intervals.length < MAX_INTERVALS) call.intervals.push(Number(now - call.lastEventAt) / 1e9);
        call.lastEventAt = now;
        if (!ok || !spans) return;
        if (!MAY_HOLD_REASON.test(ev.sse ? ev.sse.data : Buffer.from(ev.message!.body).toString('utf8'))) return;
        const doc = eventDoc(ev);
        if (doc !== undefined) call.finish.read(doc);
      },
    }),
  };
}

function eventDoc(ev: StreamEvent): unknown {
  if (!ev.sse && !ev.message) return undefined;
  try {
    return JSON.parse(ev.sse ? ev.sse.data : Buffer.from(ev.message!.body).toString('utf8'));
  } catch {
    return undefined;
  }
}

/** The body read for finish reasons and content, once, at the end. */
function readJsonBody(ex: Exchange, call: Call, capture: boolean): void {
  if (!call.body || call.body.length === 0) return;
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.concat(call.body, call.bodySize).toString('utf8'));
  } catch {
    return;
  } finally {
    call.body = undefined;
  }
  call.finish.read(doc);
  if (capture && isObj(doc)) {
    const codec = ex.adapter.codec?.(ex.described);
    if (codec) for (const s of codec.response(doc)) addOutput(call, s.text);
  }
}

function addOutput(call: Call, text: string): void {
  if (call.outputLength >= MAX_OUTPUT_READ) return;
  const piece = text.slice(0, MAX_OUTPUT_READ - call.outputLength);
  call.output.push(piece);
  call.outputLength += piece.length;
}

function streamContent(ex: Exchange, call: Call, doc: Record<string, unknown>, ev: StreamEvent): void {
  const codec = ex.adapter.codec?.(ex.described);
  if (!codec) return;
  const name = ev.sse ? ev.sse.event : String(ev.message?.headers[':event-type'] ?? '');
  const unwrapped = codec.decodeEvent?.(doc)?.inner ?? doc;
  for (const s of codec.event(unwrapped, name)) addOutput(call, s.text);
}

/**
 * gen_ai.input.messages as the GenAI conventions shape it ([{role, parts: [{type: "text", content}]}]), from the
 * request body as it goes upstream: after every filter ran, so redactions are applied.
 */
function requestContent(ex: Exchange): string | undefined {
  const codec = ex.adapter.codec?.(ex.described);
  const json = ex.request.body.json();
  if (!codec || !json) return undefined;
  const messages: { role: string; parts: { type: string; content: string }[] }[] = [];
  let size = 0;
  for (const s of codec.request(json)) {
    if (size >= MAX_CONTENT) break;
    const content = s.text.slice(0, MAX_CONTENT - size);
    size += content.length;
    const part = { type: s.kind === 'tool_result' ? 'tool_call_response' : s.kind === 'tool_arguments' ? 'tool_call' : s.kind === 'reasoning' ? 'reasoning' : 'text', content };
    const last = messages[messages.length - 1];
    if (last && last.role === s.role) last.parts.push(part);
    else messages.push({ role: s.role, parts: [part] });
  }
  return messages.length > 0 ? JSON.stringify(messages) : undefined;
}

function outcomeOf(ex: Exchange, end: EndInfo): AuditOutcome {
  const d = end.transport?.decision;
  if (d === 'allow' || d === 'deny' || d === 'would-deny' || d === 'error') return d;
  if (ex.facts.decision === 'deny') return 'deny';
  if (!end.forwarded || !end.complete) return 'error';
  return ex.facts.wouldDeny !== undefined ? 'would-deny' : 'allow';
}

function finishCall(ctx: PipelineContext, t: TelemetryServices, ex: Exchange, end: EndInfo, call: Call, policy: NonNullable<AuditRecord['decision']['policy']>): void {
  const now = hr();
  const endUnixNano = BigInt(Date.now()) * 1_000_000n;
  const f = ex.facts;
  const r = ex.results;
  const d = ex.described;
  const capture = t.captureContent && t.otlp !== undefined;
  readJsonBody(ex, call, capture);
  const outcome = outcomeOf(ex, end);
  const status = end.status;
  const receivedAt = end.transport?.receivedAt ?? ex.startedAt;
  const upstreamEnd = call.lastChunkAt ?? call.headersAt;
  const upstreamMs = call.sentAt !== undefined && upstreamEnd !== undefined ? ms(upstreamEnd - call.sentAt) : undefined;
  const ttfc = call.firstChunkAt !== undefined ? ms(call.firstChunkAt - ex.startedAt) : undefined;
  const errorType = status >= 400 ? String(status) : outcome === 'error' ? (end.forwarded ? 'incomplete' : 'proxy_error') : undefined;
  const responseModel = r.responseModel?.slice(0, 256);
  const requestModel = d.model?.slice(0, 256);

  const otlp = t.otlp;
  if (otlp?.genAi && end.forwarded && call.upstreamStatus !== undefined) {
    // Bounded attribute values, as on the Prometheus histograms: model labels, the provider host, port 443.
    const base: Record<string, AttrValue | undefined> = {
      'gen_ai.operation.name': otelOperation(d.operation),
      'gen_ai.provider.name': ex.adapter.otelName,
      'gen_ai.request.model': String(f.modelLabel ?? 'unknown'),
      'gen_ai.response.model': responseModel !== undefined ? ctx.labeler.label(ex.adapter.id, responseModel) : undefined,
      'server.address': ex.request.host,
      'server.port': HTTPS_PORT,
    };
    const m = otlp.genAi;
    m.duration.record({ ...base, 'error.type': errorType }, Number(now - ex.startedAt) / 1e9);
    const u = r.usage;
    if (u?.input !== undefined) m.tokenUsage.record({ ...base, 'gen_ai.token.type': 'input' }, u.input);
    if (u?.output !== undefined) m.tokenUsage.record({ ...base, 'gen_ai.token.type': 'output' }, u.output);
    if (d.stream && call.upstreamStatus >= 200 && call.upstreamStatus < 300) {
      if (call.firstChunkAt !== undefined) m.timeToFirstChunk.record(base, Number(call.firstChunkAt - ex.startedAt) / 1e9);
      for (const s of call.intervals) m.timePerOutputChunk.record(base, s);
    }
  }

  const actions = ex.actions.map((a) => `${a.processor}:${a.action}${a.reason ? `:${a.reason}` : ''}${a.found ? `:${Object.entries(a.found).map(([k, n]) => `${k}=${n}`).join(',')}` : ''}`);
  if (otlp?.tracing && call.sampled) {
    const u = r.usage;
    const span: SpanData = {
      traceId: call.traceId,
      spanId: call.spanId,
      ...(call.parentSpanId && { parentSpanId: call.parentSpanId }),
      ...(call.traceState && { traceState: call.traceState }),
      name: requestModel ? `${otelOperation(d.operation)} ${requestModel}` : otelOperation(d.operation),
      startUnixNano: call.startUnixNano,
      endUnixNano: call.startUnixNano + (now - ex.startedAt),
      attributes: {
        'gen_ai.operation.name': otelOperation(d.operation),
        'gen_ai.provider.name': ex.adapter.otelName,
        'gen_ai.request.model': requestModel,
        'gen_ai.response.model': responseModel,
        'gen_ai.usage.input_tokens': u?.input,
        'gen_ai.usage.output_tokens': u?.output,
        'gen_ai.usage.cache_read.input_tokens': u?.cachedInput,
        'gen_ai.usage.cache_creation.input_tokens': u?.cacheWriteInput,
        'aigress.usage.reasoning_tokens': u?.reasoning,
        'gen_ai.response.finish_reasons': call.finish.reasons.length > 0 ? call.finish.reasons : undefined,
        'gen_ai.input.messages': capture ? call.inputMessages : undefined,
        'gen_ai.output.messages':
          capture && call.output.length > 0
            ? JSON.stringify([{ role: 'assistant', parts: [{ type: 'text', content: redactRestored(ex, call.output.join('')).slice(0, MAX_CONTENT) }], ...(call.finish.reasons[0] && { finish_reason: call.finish.reasons[0] }) }])
            : undefined,
        'error.type': errorType,
        'server.address': ex.request.host,
        'server.port': HTTPS_PORT,
        'http.response.status_code': status > 0 ? status : undefined,
        'aigress.decision': outcome,
        'aigress.deny.reason': typeof f.denyReason === 'string' ? f.denyReason : typeof f.wouldDeny === 'string' ? f.wouldDeny : undefined,
        'aigress.denied_by': typeof f.deniedBy === 'string' ? f.deniedBy : undefined,
        'aigress.policy.name': policy.name,
        'aigress.policy.generation': policy.generation,
        'aigress.processors': actions.length > 0 ? actions : undefined,
        'aigress.region': typeof f.region === 'string' ? f.region : undefined,
        'aigress.stream': d.stream,
        'aigress.cost_usd': r.costUsd,
        'aigress.provider.request_id': call.requestId,
      },
      status: errorType ? { code: STATUS_ERROR, message: typeof f.denyMessage === 'string' ? f.denyMessage : errorType } : { code: STATUS_UNSET },
    };
    otlp.span(span);
  }

  if (t.audit) {
    const tr = end.transport;
    const record: AuditRecord = {
      schema: AUDIT_SCHEMA,
      time: new Date(Number(endUnixNano / 1_000_000n)).toISOString(),
      startTime: new Date(Number((call.startUnixNano - (ex.startedAt - receivedAt)) / 1_000_000n)).toISOString(),
      level: levelOf(outcome),
      pod: ex.identity,
      provider: ex.adapter.id,
      operation: d.operation,
      host: ex.request.host,
      method: ex.request.method,
      path: pathOnly(ex.request.path),
      region: typeof f.region === 'string' ? f.region : 'unknown',
      stream: d.stream,
      model: { ...(requestModel !== undefined && { requested: requestModel }), ...(responseModel !== undefined && { served: responseModel }) },
      decision: {
        outcome,
        ...(typeof f.denyReason === 'string' ? { reason: f.denyReason } : typeof f.wouldDeny === 'string' ? { reason: f.wouldDeny } : {}),
        ...(typeof f.deniedBy === 'string' && { by: f.deniedBy }),
        ...(typeof f.denyMessage === 'string' && { message: f.denyMessage }),
        policy,
      },
      processors: ex.actions,
      ...(r.usage && { usage: r.usage }),
      ...(r.usageMissing !== undefined && { usageMissing: r.usageMissing }),
      ...(r.costUsd !== undefined && { costUsd: Number(r.costUsd.toPrecision(6)) }),
      durationMs: { total: ms(now - receivedAt), ...(upstreamMs !== undefined && { upstream: upstreamMs }), ...(ttfc !== undefined && { timeToFirstChunk: ttfc }) },
      bytes: {
        request: tr?.reqBytes ?? ex.request.body.length,
        ...(call.upstreamRequestBytes !== undefined && { upstreamRequest: call.upstreamRequestBytes }),
        response: tr?.resBytes ?? call.upstreamResponseBytes,
        ...(call.upstreamStatus !== undefined && { upstreamResponse: call.upstreamResponseBytes }),
      },
      status,
      ...(call.upstreamStatus !== undefined && { upstreamStatus: call.upstreamStatus }),
      ...(tr?.upstreamError !== undefined && { upstreamError: tr.upstreamError }),
      ...(call.requestId !== undefined && { providerRequestId: call.requestId }),
      traceId: call.traceId,
      spanId: call.spanId,
    };
    t.audit.write(record);
  }
}

function pathOnly(path: string): string {
  const q = path.indexOf('?');
  return q < 0 ? path : path.slice(0, q);
}
