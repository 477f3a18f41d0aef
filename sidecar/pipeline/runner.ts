import type { IncomingHttpHeaders } from 'node:http';
import type { Registry } from 'prom-client';
import { errorMessage } from '../../shared/errors.js';
import type { Logger } from '../../shared/log.js';
import { FILTER_TYPES } from '../../shared/policy/filters.js';
import type { EgressPolicy } from '../../shared/policy/types.js';
import type { ProviderAdapter, RequestDescription } from '../../shared/providers/types.js';
import { BodyDocument } from './body.js';
import { StepAborted, StepTimeout, isThenable, withDeadline } from './deadline.js';
import { HeaderList } from './header-list.js';
import { createFramer, framingOf, type Framer, type StreamEvent } from './framing.js';
import { identityLabelValues, runnerMetrics } from './metrics.js';
import { filterMetrics, type FilterMetrics } from './filters/metrics.js';
import { streamErrorEvent } from './stream-error.js';
import {
  PHASES,
  type Deny,
  type EndInfo,
  type EventResult,
  type Exchange,
  type ExchangeResults,
  type Framing,
  type LogFacts,
  type Phase,
  type Pipeline,
  type PodIdentity,
  type Processor,
  type ProcessorAction,
  type ResponseHead,
  type ResponseHooks,
  type UpstreamRequest,
  type Verdict,
} from './types.js';

// The processor runner: one per proxy, shared by every pipeline build. It runs an exchange's processors phase by
// phase under their failure modes and deadlines, finalises the upstream request before `sign`, and on the way
// back picks the response plan (passive, framed events, or held body) and drives it with back pressure.

/** Deadline of a processor that states none. */
export const DEFAULT_STEP_TIMEOUT_MS = 5_000;
/** A held (non-streamed) response larger than this cannot be inspected: refused when a processor must see it. */
export const MAX_HELD_BODY = 32 * 1024 * 1024;

/** onEnd work runs after the client is gone: only its deadline stops it. */
const NEVER = new AbortController().signal;
const UNDESCRIBED: RequestDescription = Object.freeze({ operation: 'unknown', stream: false });
const phaseRank = (p: Phase): number => PHASES.indexOf(p);

/** Processors in phase order, list order kept within a phase. */
export function orderProcessors(list: readonly Processor[]): Processor[] {
  return list.map((p, i) => ({ p, i })).sort((a, b) => phaseRank(a.p.phase) - phaseRank(b.p.phase) || a.i - b.i).map((x) => x.p);
}

export interface ExchangeInit {
  adapter: ProviderAdapter;
  host: string;
  method: string;
  path: string;
  /** Upstream headers: the app's, hop-by-hop removed. */
  headers: readonly string[];
  appHeaders: IncomingHttpHeaders;
  body: Buffer;
  /** The app sent a body (or said it would): the upstream request then states its length even when empty. */
  hadBody: boolean;
  policy: EgressPolicy;
  identity: PodIdentity;
  signal: AbortSignal | ExchangeAbort;
}

/** Why an ExchangeAbort's signal fired; nothing reads it, and a shared one costs no stack capture per request. */
const EXCHANGE_ABORTED = Object.freeze(new Error('aigress: the exchange was aborted'));

/**
 * An exchange's abort whose AbortSignal is made only when something asks for it (an asynchronous step, a
 * processor that passes it on): most requests never need one, and an AbortController per request, made and
 * aborted, was ~3 % of the proxy's time. `aborted` answers without making it.
 */
export class ExchangeAbort {
  private controller?: AbortController;
  private done = false;

  get aborted(): boolean {
    return this.done;
  }

  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.done) this.controller.abort(EXCHANGE_ABORTED);
    }
    return this.controller.signal;
  }

  abort(): void {
    if (this.done) return;
    this.done = true;
    this.controller?.abort(EXCHANGE_ABORTED);
  }
}

class LiveExchange implements Exchange {
  readonly adapter: ProviderAdapter;
  readonly request: UpstreamRequest;
  readonly appHeaders: IncomingHttpHeaders;
  readonly policy: EgressPolicy;
  readonly identity: PodIdentity;
  readonly startedAt = process.hrtime.bigint();
  private readonly abortSource: AbortSignal | ExchangeAbort;
  described: RequestDescription = UNDESCRIBED;
  readonly results: ExchangeResults = {};
  readonly facts: LogFacts = {};
  readonly actions: ProcessorAction[] = [];
  readonly hadBody: boolean;
  /** Processors whose request phase ran (and so get onEnd). */
  readonly reached: Processor[] = [];
  private slots?: Map<object, unknown>;

  constructor(init: ExchangeInit) {
    this.adapter = init.adapter;
    this.request = { host: init.host, method: init.method, path: init.path, headers: new HeaderList(init.headers), body: new BodyDocument(init.body) };
    this.appHeaders = init.appHeaders;
    this.policy = init.policy;
    this.identity = init.identity;
    this.abortSource = init.signal;
    this.hadBody = init.hadBody;
  }

  get signal(): AbortSignal {
    const s = this.abortSource;
    return s instanceof ExchangeAbort ? s.signal : s;
  }

  /** Without making the signal. */
  get aborted(): boolean {
    return this.abortSource.aborted;
  }

  slot<T>(owner: object, init: () => T): T {
    this.slots ??= new Map();
    if (!this.slots.has(owner)) this.slots.set(owner, init());
    return this.slots.get(owner) as T;
  }
}

export function newExchange(init: ExchangeInit): Exchange {
  return new LiveExchange(init);
}

/** The exchange was aborted (the client went away), asked without making its AbortSignal. */
export function exchangeAborted(ex: Exchange): boolean {
  return ex instanceof LiveExchange ? ex.aborted : ex.signal.aborted;
}

export type RequestResult =
  | { readonly kind: 'forward' }
  | { readonly kind: 'deny'; readonly deny: Deny; readonly processor: string }
  /** The client went away (or the exchange was aborted) before the request was ready: nothing is sent. */
  | { readonly kind: 'gone' };

/** What the response runner writes to the app; the proxy's transport implements it. */
export interface ResponseSink {
  /** Sends the response head; `sized`: the provider's content-length is kept (the body passes unchanged). */
  head(sized: boolean, contentLength?: number): void;
  /** Writes bytes; false when the app's buffer is full (wait for `onDrain`). */
  write(chunk: Buffer): boolean;
  onDrain(cb: () => void): void;
  end(): void;
  /** Answers with a denial instead of the provider's response (only before the head was sent). */
  deny(d: Deny): void;
  /** Cuts the response (a broken stream). */
  destroy(): void;
  pauseUpstream(): void;
  resumeUpstream(): void;
  /** Stops the upstream response (after a block): nothing more is read. */
  abortUpstream(): void;
}

export interface RunnerOptions {
  registry: Registry;
  log: Logger;
}

/** A processor call that failed; `mode` says what the runner made of it. */
interface Failure {
  processor: Processor;
  err: unknown;
}

const FILTER_TYPES_SET: ReadonlySet<string> = new Set(FILTER_TYPES);

export class PipelineRunner {
  private readonly m: ReturnType<typeof runnerMetrics>;
  private readonly fm: FilterMetrics;
  private readonly log: Logger;
  private labelCache = new WeakMap<PodIdentity, Map<EgressPolicy, Record<string, string>>>();

  constructor(opts: RunnerOptions) {
    this.m = runnerMetrics(opts.registry);
    this.fm = filterMetrics(opts.registry);
    this.log = opts.log;
  }

  /** Runs the request phases. Resolves `forward` with `ex.request` final to the byte, or why not. */
  async request(pipeline: Pipeline, ex: Exchange): Promise<RequestResult> {
    const live = ex as LiveExchange;
    let finalised = false;
    for (const p of pipeline.processors) {
      if (exchangeAborted(ex)) return { kind: 'gone' };
      if (!finalised && phaseRank(p.phase) >= phaseRank('sign')) {
        this.finalise(live);
        finalised = true;
      }
      live.reached.push(p);
      if (!p.onRequest) continue;
      let verdict: Verdict;
      try {
        const v = withDeadline(() => p.onRequest!(ex), p.timeoutMs ?? DEFAULT_STEP_TIMEOUT_MS, ex);
        verdict = isThenable(v) ? await v : v;
      } catch (err) {
        if (err instanceof StepAborted || exchangeAborted(ex)) return { kind: 'gone' };
        const d = this.failed(ex, { processor: p, err }, p.phase);
        if (d) return { kind: 'deny', deny: d, processor: p.name };
        continue;
      }
      if (verdict.action === 'deny') {
        if (this.denied(ex, p, verdict, p.phase)) return { kind: 'deny', deny: verdict, processor: p.name };
      }
    }
    if (exchangeAborted(ex)) return { kind: 'gone' };
    if (!finalised) this.finalise(live);
    return { kind: 'forward' };
  }

  /** The body is final: content-length states what is sent (a chunked upload becomes a sized one). */
  private finalise(ex: LiveExchange): void {
    const { body, headers } = ex.request;
    if (ex.hadBody || body.changed || headers.has('content-length')) headers.set('content-length', String(body.length));
  }

  /**
   * Plans one response. Returns the driver the transport feeds with upstream bytes; it writes to `sink`.
   */
  response(pipeline: Pipeline, ex: Exchange, head: ResponseHead, sink: ResponseSink): ResponseDriver {
    const live = ex as LiveExchange;
    const framing = framingOf(head);
    const parts: { p: Processor; h: ResponseHooks }[] = [];
    for (const p of live.reached) {
      if (!p.onResponse) continue;
      let h: ResponseHooks | undefined;
      try {
        h = p.onResponse(ex, head, framing);
      } catch (err) {
        // A processor that cannot even plan its part of the response: its failure mode decides.
        const d = this.failed(ex, { processor: p, err }, 'response');
        if (d) return new DeniedDriver(sink, d);
        continue;
      }
      if (h) parts.push({ p, h });
    }
    const stream = framing === 'sse' || framing === 'eventstream';
    const transforms = stream ? parts.filter((x) => x.h.event || x.h.flush) : [];
    const holders = !stream ? parts.filter((x) => x.h.body) : [];
    // Read-only hooks still follow their failure mode: one that throws in `closed` mode breaks the response
    // (it can no longer be answered in place), never lets it pass unobserved.
    let broken = false;
    const guard = <A>(p: Processor, fn: (a: A) => void) => (a: A): void => {
      if (broken) return;
      try {
        fn(a);
      } catch (err) {
        if (this.failed(ex, { processor: p, err }, 'response')) {
          broken = true;
          sink.abortUpstream();
          sink.destroy();
        }
      }
    };
    const bytes = parts.filter((x) => x.h.bytes).map((x) => guard(x.p, x.h.bytes!.bind(x.h)));
    const observers = stream ? parts.filter((x) => x.h.observe).map((x) => guard(x.p, x.h.observe!.bind(x.h))) : [];
    const deliveredEvents = stream ? parts.filter((x) => x.h.deliveredEvent).map((x) => guard(x.p, x.h.deliveredEvent!.bind(x.h))) : [];
    const deliveredBytes = stream ? [] : parts.filter((x) => x.h.delivered).map((x) => guard(x.p, x.h.delivered!.bind(x.h)));
    if (transforms.length > 0) return new EventDriver(this, ex, head, framing as 'sse' | 'eventstream', sink, transforms, bytes, observers, deliveredEvents);
    if (holders.length > 0) return new HeldDriver(this, ex, head, sink, holders, bytes, deliveredBytes);
    // Passively, what the app receives is what came: delivered bytes and events are the upstream's.
    const watchers = [...observers, ...deliveredEvents];
    return new PassiveDriver(sink, [...bytes, ...deliveredBytes], watchers.length > 0 ? { framer: createFramer(framing as 'sse' | 'eventstream'), observers: watchers } : undefined, () => broken);
  }

  /** Runs every reached processor's onEnd (awaited: drain waits for budgets to settle). Never throws. */
  async end(ex: Exchange, info: EndInfo): Promise<void> {
    const live = ex as LiveExchange;
    // Reverse order, one after the other: a later phase's results (metering's usage) are in place before an
    // earlier one (a budget's settlement) reads them. Synchronous ones cost no promise.
    for (let i = live.reached.length - 1; i >= 0; i--) {
      const p = live.reached[i]!;
      if (!p.onEnd) continue;
      try {
        const r = withDeadline(() => p.onEnd!(ex, info), p.timeoutMs ?? DEFAULT_STEP_TIMEOUT_MS, NEVER);
        if (isThenable(r)) await r.catch((err: unknown) => this.endFailed(p, err));
      } catch (err) {
        this.endFailed(p, err);
      }
    }
  }

  private endFailed(p: Processor, err: unknown): void {
    this.m.failures.inc({ processor: p.name, type: p.type, phase: 'end', mode: p.failureMode ?? 'closed' });
    this.log.error({ processor: p.name, err: errorMessage(err) }, 'processor failed at the end of an exchange');
  }

  /** A denial: enforced (true) or, in audit mode, recorded as would-deny (false: go on). */
  denied(ex: Exchange, p: Processor, d: Deny, phase: Phase | 'response'): boolean {
    const audit = p.audit === true;
    this.m.denials.inc({ provider: ex.adapter.id, reason: d.reason, mode: audit ? 'audit' : 'enforce', ...this.labels(ex) });
    ex.actions.push({ processor: p.name, type: p.type, phase, action: audit ? 'would-deny' : 'deny', reason: d.reason });
    const f = ex.facts;
    if (audit) {
      f.wouldDeny = f.wouldDeny === undefined ? d.reason : `${String(f.wouldDeny)},${d.reason}`;
      return false;
    }
    f.decision = 'deny';
    f.denyReason = d.reason;
    f.denyMessage = d.message;
    f.deniedBy = p.name;
    return true;
  }

  /** A processor threw or timed out: the denial to answer with (fail closed), or undefined (fail open). */
  failed(ex: Exchange, f: Failure, phase: Phase | 'response'): Deny | undefined {
    const p = f.processor;
    const mode = p.failureMode ?? 'closed';
    const why = f.err instanceof StepTimeout ? `no answer within ${f.err.timeoutMs} ms` : errorMessage(f.err);
    this.m.failures.inc({ processor: p.name, type: p.type, phase, mode });
    // A filter that threw or missed its deadline could not decide either: it counts with the failures filters
    // report themselves (which return a verdict and never reach here, so nothing is counted twice).
    if (FILTER_TYPES_SET.has(p.type)) this.fm.failures.inc({ filter: p.name, mode });
    this.log.error({ processor: p.name, phase, mode, err: why }, 'processor failed');
    if (mode === 'open') {
      ex.actions.push({ processor: p.name, type: p.type, phase, action: 'failed-open', reason: why });
      return undefined;
    }
    const policy = ex.policy.metadata.namespace ? `${ex.policy.metadata.namespace}/${ex.policy.metadata.name}` : ex.policy.metadata.name;
    const d: Deny = {
      action: 'deny',
      kind: 'unavailable',
      status: 503,
      reason: 'processor_failed',
      message: `aigress: policy step ${p.name} (${p.type}) could not decide (${f.err instanceof StepTimeout ? why : 'it failed'}) and policy ${policy} fails closed; ${phase === 'response' ? 'the request had reached the provider; the rest of its response is withheld' : 'nothing was sent'}`,
    };
    if (this.denied(ex, p, d, phase)) return d;
    return undefined;
  }

  private labels(ex: Exchange): Record<string, string> {
    let byPolicy = this.labelCache.get(ex.identity);
    if (!byPolicy) this.labelCache.set(ex.identity, (byPolicy = new Map()));
    let l = byPolicy.get(ex.policy);
    if (!l) {
      l = identityLabelValues(ex.identity, ex.policy.spec.metering?.identityLabels ?? []);
      if (byPolicy.size > 16) byPolicy.clear();
      byPolicy.set(ex.policy, l);
    }
    return l;
  }
}

/** Feeds one upstream response to the app through the plan the runner chose. */
export interface ResponseDriver {
  /** The head goes out only once the body is decided (a held response). */
  readonly holdsHead: boolean;
  /** The provider's content-length can be kept. */
  readonly sized: boolean;
  data(chunk: Buffer): void;
  /** Upstream ended normally. */
  end(): void;
  /** The framing broke (an undecodable event stream); for EndInfo. */
  readonly framingFailed: boolean;
}

/** The head and body go through unchanged; observers read along. */
class PassiveDriver implements ResponseDriver {
  readonly holdsHead = false;
  readonly sized = true;
  constructor(
    private readonly sink: ResponseSink,
    private readonly bytes: ((c: Buffer) => void)[],
    private readonly events: { framer: Framer; observers: ((ev: StreamEvent) => void)[] } | undefined,
    private readonly broken: () => boolean,
  ) {}
  get framingFailed(): boolean {
    return this.events?.framer.failed ?? false;
  }
  data(chunk: Buffer): void {
    for (const b of this.bytes) b(chunk);
    if (this.events) for (const ev of this.events.framer.push(chunk)) for (const o of this.events.observers) o(ev);
    if (this.broken()) return;
    if (!this.sink.write(chunk)) {
      this.sink.pauseUpstream();
      this.sink.onDrain(() => this.sink.resumeUpstream());
    }
  }
  end(): void {
    if (!this.broken()) this.sink.end();
  }
}

/** A processor failed while planning the response and fails closed: the app gets the denial. */
class DeniedDriver implements ResponseDriver {
  readonly holdsHead = true;
  readonly sized = false;
  readonly framingFailed = false;
  constructor(sink: ResponseSink, d: Deny) {
    sink.deny(d);
    sink.abortUpstream();
  }
  data(): void {}
  end(): void {}
}

/** A stream framed once; each event passes the transforms in order; async ones pause the upstream. */
class EventDriver implements ResponseDriver {
  readonly holdsHead = false;
  readonly sized = false;
  private readonly framer: Framer;
  private readonly queue: StreamEvent[] = [];
  private busy = false;
  private ended = false;
  private stopped = false;
  private waitingDrain = false;

  constructor(
    private readonly runner: PipelineRunner,
    private readonly ex: Exchange,
    private readonly head: ResponseHead,
    private readonly framing: 'sse' | 'eventstream',
    private readonly sink: ResponseSink,
    private readonly transforms: { p: Processor; h: ResponseHooks }[],
    private readonly bytes: ((c: Buffer) => void)[],
    private readonly observers: ((ev: StreamEvent) => void)[],
    private readonly delivered: ((ev: StreamEvent) => void)[],
  ) {
    this.framer = createFramer(framing);
  }

  get framingFailed(): boolean {
    return this.framer.failed;
  }

  data(chunk: Buffer): void {
    if (this.stopped) return;
    for (const b of this.bytes) b(chunk);
    const evs = this.framer.push(chunk);
    if (this.framer.failed) {
      // Bytes that cannot be decoded cannot be inspected: the stream ends here (fail closed).
      this.stop({ action: 'deny', kind: 'bad_gateway', status: 502, reason: 'undecodable_stream', message: 'aigress: the provider stream could not be decoded for inspection' });
      return;
    }
    for (const ev of evs) for (const o of this.observers) o(ev);
    this.queue.push(...evs);
    this.pump();
  }

  end(): void {
    this.ended = true;
    this.pump();
  }

  private pump(): void {
    if (this.busy || this.stopped) return;
    this.busy = true;
    this.drive().then(
      () => {
        this.busy = false;
        // Events (or the end) that arrived while the loop was finishing: go again.
        if (!this.stopped && (this.queue.length > 0 || this.ended)) this.pump();
      },
      (err: unknown) => {
        this.busy = false;
        this.runner.failed(this.ex, { processor: this.transforms[0]!.p, err }, 'response');
        this.sink.destroy();
      },
    );
  }

  private async drive(): Promise<void> {
    while (!this.stopped) {
      const ev = this.queue.shift();
      if (ev) {
        const out = await this.through([ev], 0);
        if (out === undefined) return;
        this.send(out);
        continue;
      }
      if (!this.ended) {
        if (this.paused && !this.waitingDrain) {
          this.paused = false;
          this.sink.resumeUpstream();
        }
        return;
      }
      // Upstream is done: each transform releases what it held, through the ones after it.
      for (let i = 0; i < this.transforms.length && !this.stopped; i++) {
        const { p, h } = this.transforms[i]!;
        if (!h.flush) continue;
        const r = await this.call(p, () => h.flush!());
        if (r === undefined) return;
        const out = await this.through(r, i + 1);
        if (out === undefined) return;
        this.send(out);
      }
      const rest = this.framer.end();
      if (rest && !this.stopped) this.sink.write(rest);
      if (!this.stopped) this.sink.end();
      this.stopped = true;
      return;
    }
  }

  private paused = false;

  /** `evs` through transforms from `from` on; undefined when the stream was stopped (a block or a failure). */
  private async through(evs: readonly StreamEvent[], from: number): Promise<readonly StreamEvent[] | undefined> {
    let cur = evs;
    for (let i = from; i < this.transforms.length && cur.length > 0; i++) {
      const { p, h } = this.transforms[i]!;
      if (!h.event) continue;
      const next: StreamEvent[] = [];
      for (const ev of cur) {
        const r = await this.call(p, () => h.event!(ev), ev);
        if (r === undefined) return undefined;
        next.push(...r);
      }
      cur = next;
    }
    return cur;
  }

  /**
   * One transform call under its deadline. While it is pending the upstream is paused. Returns its events, or
   * undefined once the stream has been stopped (a denial, or a closed failure). A failed-open call passes `ev`.
   */
  private async call(p: Processor, fn: () => EventResult | Promise<EventResult>, ev?: StreamEvent): Promise<readonly StreamEvent[] | undefined> {
    let r: EventResult;
    try {
      const v = withDeadline(fn, p.timeoutMs ?? DEFAULT_STEP_TIMEOUT_MS, this.ex);
      if (isThenable(v)) {
        if (!this.paused) {
          this.paused = true;
          this.sink.pauseUpstream();
        }
        r = await v;
      } else r = v;
    } catch (err) {
      if (err instanceof StepAborted || exchangeAborted(this.ex)) {
        this.stopped = true;
        return undefined;
      }
      const d = this.runner.failed(this.ex, { processor: p, err }, 'response');
      if (!d) return ev ? [ev] : [];
      this.stop(d);
      return undefined;
    }
    if (Array.isArray(r)) return r as readonly StreamEvent[];
    const d = r as Deny;
    if (!this.runner.denied(this.ex, p, d, 'response')) return ev ? [ev] : [];
    this.stop(d);
    return undefined;
  }

  private send(evs: readonly StreamEvent[]): void {
    for (const ev of evs) {
      for (const d of this.delivered) d(ev);
      if (this.sink.write(ev.raw) || this.waitingDrain) continue;
      this.waitingDrain = true;
      if (!this.paused) {
        this.paused = true;
        this.sink.pauseUpstream();
      }
      this.sink.onDrain(() => {
        this.waitingDrain = false;
        if (this.paused && !this.busy) {
          this.paused = false;
          this.sink.resumeUpstream();
        }
      });
    }
  }

  /** Ends the stream the way the provider ends a failed one; nothing more reaches the app. */
  private stop(d: Deny): void {
    if (this.stopped) return;
    this.stopped = true;
    this.queue.length = 0;
    this.sink.abortUpstream();
    this.sink.write(streamErrorEvent(this.ex.adapter, this.framing, this.head, d));
    this.sink.end();
  }
}

/** A non-streamed response whose body a processor must decide before the app sees the head. */
class HeldDriver implements ResponseDriver {
  readonly holdsHead = true;
  readonly sized = false;
  readonly framingFailed = false;
  private readonly chunks: Buffer[] = [];
  private size = 0;
  private over = false;

  constructor(
    private readonly runner: PipelineRunner,
    private readonly ex: Exchange,
    private readonly head: ResponseHead,
    private readonly sink: ResponseSink,
    private readonly holders: { p: Processor; h: ResponseHooks }[],
    private readonly bytes: ((c: Buffer) => void)[],
    private readonly delivered: ((c: Buffer) => void)[],
  ) {}

  data(chunk: Buffer): void {
    for (const b of this.bytes) b(chunk);
    if (this.over) return;
    this.size += chunk.length;
    if (this.size > MAX_HELD_BODY) {
      this.over = true;
      this.chunks.length = 0;
      return;
    }
    this.chunks.push(chunk);
  }

  end(): void {
    this.decide().catch((err: unknown) => {
      this.runner.failed(this.ex, { processor: this.holders[0]!.p, err }, 'response');
      this.sink.destroy();
    });
  }

  private async decide(): Promise<void> {
    if (this.over) {
      this.sink.deny({ action: 'deny', kind: 'bad_gateway', status: 502, reason: 'response_too_large', message: `aigress: the provider's response is larger than ${MAX_HELD_BODY} bytes and cannot be inspected as policy requires` });
      return;
    }
    const body = new BodyDocument(this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.size));
    for (const { p, h } of this.holders) {
      let v: Verdict;
      try {
        const r = withDeadline(() => h.body!(body, this.head), p.timeoutMs ?? DEFAULT_STEP_TIMEOUT_MS, this.ex);
        v = isThenable(r) ? await r : r;
      } catch (err) {
        if (err instanceof StepAborted || exchangeAborted(this.ex)) return;
        const d = this.runner.failed(this.ex, { processor: p, err }, 'response');
        if (d) {
          this.sink.deny(d);
          return;
        }
        continue;
      }
      if (v.action === 'deny' && this.runner.denied(this.ex, p, v, 'response')) {
        this.sink.deny(v);
        return;
      }
    }
    const out = body.bytes();
    for (const d of this.delivered) d(out);
    this.sink.head(!body.changed, out.length);
    this.sink.write(out);
    this.sink.end();
  }
}

export type { Framing };
