import { durationMs, type Filter } from '../../../shared/policy/filters.js';
import { setText, type ContentCodec, type TextSegment } from '../../../shared/providers/content.js';
import type { BodyDocument, JsonRecord } from '../body.js';
import type { PipelineContext } from '../context.js';
import { CONTINUE, deny } from '../deny.js';
import type { Deny, Exchange, Framing, PipelineServices, Processor, ResponseHead, ResponseHooks, Verdict } from '../types.js';
import { runnerMetrics } from '../metrics.js';
import type { FilterMetrics } from './metrics.js';
import { appSigned, resignsBedrock } from '../app-signature.js';
import { commitDecoded, readableBody } from './request-body.js';
import { observeOnly, streamHooks, type TextRewriter } from './stream-text.js';

// What every filter shares: its processor properties from the policy entry, reading the request's texts through
// the adapter's content codec (or following the failure mode when they cannot be read), writing edits back,
// recording actions (kinds and counts, never values) and timing, and running a text rewriter over a response,
// held JSON or stream events. A filter file supplies only its decision over texts.

export interface FilterEnv {
  readonly ctx: PipelineContext;
  readonly services: PipelineServices;
  readonly metrics: FilterMetrics;
}

export type FilterPhaseLabel = 'request' | 'response';

/**
 * A filter's `timeout` becomes the processor's deadline. The runner enforces it only on a call that returns a
 * promise (an external guard, which also enforces its own); built-in filters answer synchronously and are never
 * cut off, so their work must stay linear in the text, which the body limit bounds (docs/filters.md: timeout).
 */
export function processorProps(f: Filter, env: FilterEnv): Pick<Processor, 'name' | 'type' | 'phase' | 'failureMode' | 'timeoutMs' | 'audit'> {
  return {
    name: f.name,
    type: f.type,
    phase: 'transform',
    failureMode: f.failureMode === 'FailOpen' ? 'open' : 'closed',
    timeoutMs: durationMs(f.timeout) ?? 2000,
    audit: env.ctx.audit,
  };
}

export const inRequest = (f: Filter): boolean => f.phase === 'request' || f.phase === 'both';
export const inResponse = (f: Filter): boolean => f.phase === 'response' || f.phase === 'both';

/** The texts of a request, with the codec and JSON view that produced them. */
export interface RequestTexts {
  readonly codec: ContentCodec;
  readonly json: Readonly<JsonRecord>;
  readonly segments: readonly TextSegment[];
}

/**
 * What a fail-closed refusal says happened: on the request side nothing left the pod; on the response side the
 * request had reached the provider (and may have been billed or acted on), only its answer is withheld.
 */
export function failedTail(phase: FilterPhaseLabel): string {
  return phase === 'request' ? 'nothing was sent' : "the request had reached the provider; the rest of its response is withheld";
}

export class FilterTools {
  readonly props: ReturnType<typeof processorProps>;
  constructor(
    readonly filter: Filter,
    readonly env: FilterEnv,
  ) {
    this.props = processorProps(filter, env);
  }

  get closed(): boolean {
    return this.filter.failureMode !== 'FailOpen';
  }

  /** spec.mode is audit: the filter decides and records (`would-block`, `would-redact`, …) but changes nothing. */
  get audit(): boolean {
    return this.env.ctx.audit;
  }

  /** An action's name as recorded: `would-<action>` in audit mode. */
  actionName(action: string): string {
    return this.audit ? `would-${action}` : action;
  }

  /** One action in the log line and the metric; `found` by kind and count, never values. */
  record(ex: Exchange, phase: FilterPhaseLabel, action: string, found?: Record<string, number>, reason?: string): void {
    this.env.metrics.actions.inc({ filter: this.filter.name, type: this.filter.type, action, phase });
    ex.actions.push({
      processor: this.filter.name,
      type: this.filter.type,
      phase: phase === 'request' ? 'transform' : 'response',
      action,
      ...(found && { found }),
      ...(reason !== undefined && { reason }),
    });
  }

  /** Runs `fn` and observes its duration (synchronous work; async callers time themselves). */
  time<T>(phase: FilterPhaseLabel, fn: () => T): T {
    const t0 = process.hrtime.bigint();
    try {
      return fn();
    } finally {
      this.observe(phase, t0);
    }
  }

  observe(phase: FilterPhaseLabel, t0: bigint): void {
    this.env.metrics.duration.observe({ filter: this.filter.name, type: this.filter.type, phase }, Number(process.hrtime.bigint() - t0) / 1e9);
  }

  /**
   * A block decision: recorded (`would-block` in audit mode), then the denial to return, or undefined when audit
   * mode lets a response go on as it is (see `enforce`).
   */
  blocked(ex: Exchange, phase: FilterPhaseLabel, found: Record<string, number>, reason?: string): Deny | undefined {
    this.record(ex, phase, this.actionName('block'), found, reason);
    return this.enforce(ex, phase, this.block(phase, found));
  }

  /**
   * The denial to hand the runner, or undefined to go on unchanged. A request's denial always goes to the runner,
   * which in audit mode records it as would-deny and forwards the request as the app sent it. On a response the
   * filter does that itself in audit mode: a stream rewriter that holds text back cannot have the runner pass
   * only the current event on (held text would be lost or reordered), so it must keep going as if it logged.
   */
  enforce(ex: Exchange, phase: FilterPhaseLabel, d: Deny): Deny | undefined {
    if (!this.audit || phase === 'request') return d;
    const m = runnerMetrics(this.env.services.registry);
    m.denials.inc({ provider: ex.adapter.id, reason: d.reason, mode: 'audit', ...this.env.ctx.identityLabels(ex.identity) });
    ex.actions.push({ processor: this.filter.name, type: this.filter.type, phase: 'response', action: 'would-deny', reason: d.reason });
    const w = ex.facts.wouldDeny;
    ex.facts.wouldDeny = w === undefined ? d.reason : `${String(w)},${d.reason}`;
    return undefined;
  }

  /** 403 in the provider's shape, naming the filter and the kinds found, never the match. */
  block(phase: FilterPhaseLabel, found: Record<string, number>): Deny {
    const what = Object.entries(found).map(([k, n]) => `${k} (${n})`).join(', ');
    const tail = phase === 'request' ? '; nothing was sent to the provider' : '';
    return deny('policy', 403, 'filter_blocked', `aigress: filter ${this.filter.name} (${this.filter.type}) blocked the ${phase}: found ${what}${tail}`);
  }

  /** The filter could not read what it must: counted, then FailOpen goes on, FailClosed refuses. */
  uninspectable(ex: Exchange, phase: FilterPhaseLabel, why: string): Verdict {
    const mode = this.closed ? 'closed' : 'open';
    this.env.metrics.failures.inc({ filter: this.filter.name, mode });
    if (!this.closed) {
      this.record(ex, phase, 'failed-open', undefined, why);
      return CONTINUE;
    }
    return phase === 'request'
      ? deny('bad_request', 400, 'uninspectable_body', `aigress: filter ${this.filter.name} (${this.filter.type}) cannot inspect this request (${why}) and fails closed; nothing was sent`)
      : deny('bad_gateway', 502, 'uninspectable_response', `aigress: filter ${this.filter.name} (${this.filter.type}) cannot inspect the provider's response (${why}) and fails closed; ${failedTail('response')}`);
  }

  /** A guard or step failure the filter handles itself (not a throw): counted, then the failure mode decides. */
  failed(ex: Exchange, phase: FilterPhaseLabel, why: string): Verdict {
    const mode = this.closed ? 'closed' : 'open';
    this.env.metrics.failures.inc({ filter: this.filter.name, mode });
    if (!this.closed) {
      this.record(ex, phase, 'failed-open', undefined, why);
      return CONTINUE;
    }
    return deny('unavailable', 503, 'filter_failed', `aigress: filter ${this.filter.name} (${this.filter.type}) could not decide (${why}) and fails closed; ${failedTail(phase)}`);
  }

  /** The request's texts, `empty` for a request without a body, or the verdict when they cannot be read. */
  requestTexts(ex: Exchange): RequestTexts | 'empty' | Verdict {
    if (ex.request.body.length === 0) return 'empty';
    const readable = readableBody(ex);
    if ('why' in readable) return this.uninspectable(ex, 'request', readable.why);
    const body = readable.doc;
    const codec = ex.adapter.codec?.(ex.described);
    if (!codec) return this.uninspectable(ex, 'request', `no content codec for ${ex.adapter.id} ${ex.described.operation}${ex.described.model ? ` (${ex.described.model.slice(0, 64)})` : ''}`);
    const json = body.json();
    if (!json) return this.uninspectable(ex, 'request', `body is ${body.noJson === 'invalid_utf8' ? 'not valid UTF-8' : body.noJson === 'too_deep' ? 'nested too deep' : 'not a JSON object'}`);
    return { codec, json, segments: codec.request(json) };
  }

  /**
   * Writes changed texts back (path → text). A Bedrock request the app signed itself would go upstream with a
   * broken signature: refused unless a managed-credentials step signs it again (`resignsBedrock`).
   */
  writeRequest(ex: Exchange, edits: ReadonlyMap<TextSegment, string>): Verdict {
    if (edits.size === 0 || this.audit) return CONTINUE;
    const refused = this.signedRefusal(ex);
    if (refused) return refused;
    const readable = readableBody(ex);
    const doc = 'doc' in readable ? readable.doc : ex.request.body;
    doc.edit((j) => {
      for (const [seg, text] of edits) setText(j, seg.path, text);
    });
    if ('decoded' in readable && readable.decoded) commitDecoded(ex, doc);
    return CONTINUE;
  }

  /** The refusal for rewriting a Bedrock request the app signed itself, when nothing will sign it again. */
  signedRefusal(ex: Exchange): Deny | undefined {
    if (ex.adapter.id === 'bedrock' && appSigned(ex) && !resignsBedrock(ex)) {
      return deny(
        'policy',
        403,
        'signed_body_rewrite',
        `aigress: filter ${this.filter.name} (${this.filter.type}) must rewrite this Bedrock request, but the app signed it with SigV4 and a rewritten request would break the signature; the proxy holds no Bedrock credentials to sign it again (spec.credentials), so nothing was sent`,
      );
    }
    return undefined;
  }

  /**
   * Response hooks that run `rewriter` (one per exchange) over every text the app will read: a held JSON body,
   * or each stream event (text on a stream channel may be held back by the rewriter, bounded by its window).
   */
  responseHooks(ex: Exchange, head: ResponseHead, framing: Framing, rewriter: () => TextRewriter, mustInspect: boolean): ResponseHooks | undefined {
    if (head.status >= 300) return undefined; // provider errors carry no content
    const codec = ex.adapter.codec?.(ex.described);
    const enc = head.headers['content-encoding'];
    const encoded = enc !== undefined && String(enc).toLowerCase() !== 'identity';
    if (!codec || encoded || framing === 'other') {
      if (!mustInspect) return undefined;
      const why = !codec ? `no content codec for ${ex.adapter.id} ${ex.described.operation}` : encoded ? `content-encoding ${String(enc).slice(0, 32)}` : 'not JSON or a stream';
      let verdict: Verdict | undefined;
      const once = (): Verdict => (verdict ??= this.uninspectable(ex, 'response', why));
      return {
        body: once,
        event: (ev) => {
          const v = once();
          return v.action === 'deny' ? v : [ev];
        },
      };
    }
    const make = (): TextRewriter => (this.audit ? observeOnly(rewriter()) : rewriter());
    if (framing === 'json') {
      return {
        body: (body) => this.time('response', () => this.rewriteJsonBody(ex, body, codec, make(), mustInspect)),
      };
    }
    const s = streamHooks(codec, make());
    return {
      event: (ev) => this.time('response', () => s.event(ev)),
      flush: () => this.time('response', () => s.flush()),
    };
  }

  private rewriteJsonBody(ex: Exchange, body: BodyDocument, codec: ContentCodec, rw: TextRewriter, mustInspect: boolean): Verdict {
    const docs: Record<string, unknown>[] = [];
    const json = body.json();
    let array: unknown[] | undefined;
    if (json) docs.push(json as Record<string, unknown>);
    else if (body.noJson === 'not_object') {
      // streamGenerateContent without alt=sse answers a JSON array of responses
      try {
        const v: unknown = JSON.parse(body.bytes().toString('utf8'));
        if (Array.isArray(v)) {
          array = v;
          for (const d of v) if (d !== null && typeof d === 'object' && !Array.isArray(d)) docs.push(d as Record<string, unknown>);
        }
      } catch {
        /* falls through to uninspectable */
      }
    }
    if (docs.length === 0) return mustInspect ? this.uninspectable(ex, 'response', 'body is not a JSON object') : CONTINUE;
    const edits: [Record<string, unknown>, TextSegment, string][] = [];
    for (const d of docs) {
      for (const seg of codec.response(d)) {
        const r = rw.whole(seg);
        if (typeof r !== 'string') return r;
        if (r !== seg.text) edits.push([d, seg, r]);
      }
    }
    if (edits.length === 0) return CONTINUE;
    if (array) {
      for (const [d, seg, text] of edits) setText(d, seg.path, text);
      body.replace(Buffer.from(JSON.stringify(array), 'utf8'));
    } else {
      body.edit((j) => {
        for (const [, seg, text] of edits) setText(j, seg.path, text);
      });
    }
    return CONTINUE;
  }
}
