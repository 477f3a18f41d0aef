import { Agent, request } from 'undici';
import { durationMs, type ExternalFilter } from '../../../shared/policy/filters.js';
import { obj, setText, type ContentCodec, type TextSegment } from '../../../shared/providers/content.js';
import { CONTINUE, deny } from '../deny.js';
import { eventJson, withJson, type StreamEvent } from '../framing.js';
import type { Deny, EventResult, Exchange, Processor, ResponseHooks, Verdict } from '../types.js';
import { FilterTools, inRequest, inResponse, type FilterEnv } from './common.js';

// `type: external`: POSTs a JSON envelope of the texts to a guard (docs/filters.md documents it) and follows its
// answer: allow, deny (403 with the guard's reason) or rewrite (segment ids → new texts). A guard that does not
// answer within `timeout`, refuses the connection, answers 5xx or anything that is not a valid answer follows
// the failure mode (FailClosed → 503 naming the filter, nothing sent; FailOpen → on, counted and logged).
// Connections to the guard are kept alive (one undici Agent per filter, closed with the pipeline). The guard
// gets the envelope only: never the app's headers, so never the provider's credentials.
// On a streamed response the guard sees windows of text: events are held until a window of at least
// STREAM_WINDOW characters has arrived, its first event has waited STREAM_MAX_WAIT_MS (checked as events
// arrive), or the stream ends; then the window is judged and released. So a slow stream's text is not held for
// a whole window: the added delay per event is at most about STREAM_MAX_WAIT_MS plus one guard round trip.

export const ENVELOPE_VERSION = 'aigress.io/filter/v1';
/** Characters of streamed text collected before one guard call. */
export const STREAM_WINDOW = 512;
/** Milliseconds the first held event of a stream window waits at most before the window is judged. */
export const STREAM_MAX_WAIT_MS = 200;
/** Larger guard answers are not read: they are treated as garbage. */
const MAX_ANSWER = 4 * 1024 * 1024;

export interface GuardSegment {
  id: string;
  role: string;
  kind: string;
  text: string;
}

export type GuardAnswer = { action: 'allow' } | { action: 'deny'; reason: string } | { action: 'rewrite'; segments: { id: string; text: string }[] };

/** A guard's answer, checked; undefined when it is not one. */
export function parseAnswer(v: unknown): GuardAnswer | undefined {
  const o = obj(v);
  if (!o) return undefined;
  if (o.action === 'allow') return { action: 'allow' };
  if (o.action === 'deny') return { action: 'deny', reason: typeof o.reason === 'string' ? o.reason.slice(0, 500) : 'denied by the guard' };
  if (o.action === 'rewrite' && Array.isArray(o.segments)) {
    const segments: { id: string; text: string }[] = [];
    for (const s of o.segments) {
      const x = obj(s);
      if (!x || typeof x.id !== 'string' || typeof x.text !== 'string') return undefined;
      segments.push({ id: x.id, text: x.text });
    }
    return { action: 'rewrite', segments };
  }
  return undefined;
}

class GuardError extends Error {}

/** A rewrite naming a segment the guard was not sent: a broken answer on either side (the failure mode decides). */
const UNKNOWN_ID = 'guard rewrote a segment id it was not sent';

export function externalFilter(f: ExternalFilter, env: FilterEnv): Processor {
  const tools = new FilterTools(f, env);
  const timeout = durationMs(f.timeout) ?? 200;
  const agent = new Agent({ keepAliveTimeout: 30_000, connections: 16, connect: { timeout } });
  const url = new URL(f.url);

  const call = async (ex: Exchange, phase: 'request' | 'response', segments: GuardSegment[]): Promise<GuardAnswer> => {
    const envelope = {
      version: ENVELOPE_VERSION,
      filter: f.name,
      phase,
      provider: ex.adapter.id,
      operation: ex.described.operation,
      ...(ex.described.model !== undefined && { model: ex.described.model }),
      identity: { namespace: ex.identity.namespace, pod: ex.identity.pod, serviceAccount: ex.identity.serviceAccount, workload: ex.identity.workload },
      segments,
    };
    // One controller with a timer held here, not AbortSignal.any([AbortSignal.timeout(…), …]): `any` holds its
    // sources weakly and the timeout's timer holds its signal weakly, so on Node 20 a GC could collect the
    // timeout and the guard's deadline never fired (seen: a 1 s guard answer taken under a 200 ms timeout).
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), timeout);
    const cancel = (): void => ac.abort();
    if (ex.signal.aborted) ac.abort();
    else ex.signal.addEventListener('abort', cancel, { once: true });
    try {
      return await exchangeWithGuard(ex, envelope, ac.signal);
    } finally {
      clearTimeout(timer);
      ex.signal.removeEventListener('abort', cancel);
    }
  };

  const exchangeWithGuard = async (ex: Exchange, envelope: object, signal: AbortSignal): Promise<GuardAnswer> => {
    let res: Awaited<ReturnType<typeof request>>;
    try {
      res = await request(url, { method: 'POST', dispatcher: agent, signal, headers: { 'content-type': 'application/json' }, body: JSON.stringify(envelope) });
    } catch (err) {
      if (signal.aborted && !ex.signal.aborted) throw new GuardError(`no answer within ${timeout} ms`);
      throw new GuardError(`guard unreachable: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    let text = '';
    try {
      if (res.statusCode !== 200) {
        await res.body.dump({ limit: 64 * 1024 }); // read off, so the connection stays usable
        throw new GuardError(`guard answered ${res.statusCode}`);
      }
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const c of res.body) {
        size += (c as Buffer).length;
        if (size > MAX_ANSWER) throw new GuardError('guard answer too large');
        chunks.push(c as Buffer);
      }
      text = Buffer.concat(chunks).toString('utf8');
    } catch (err) {
      // a body not read to its end is dropped; its stream then reports an abort nobody needs to hear
      res.body.on('error', () => {});
      res.body.destroy();
      if (err instanceof GuardError) throw err;
      if (signal.aborted && !ex.signal.aborted) throw new GuardError(`no answer within ${timeout} ms`);
      throw new GuardError(`guard answer broke off: ${(err as Error).message}`);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new GuardError('guard answer is not JSON');
    }
    const answer = parseAnswer(parsed);
    if (!answer) throw new GuardError('guard answer is not allow, deny or rewrite');
    return answer;
  };

  const guardDeny = (reason: string): Deny => deny('policy', 403, 'guard_denied', `aigress: filter ${f.name} (external) denied: ${reason}`);

  /** Calls the guard and maps failures to the failure mode; returns the answer or the verdict to give. */
  const judge = async (ex: Exchange, phase: 'request' | 'response', segments: GuardSegment[]): Promise<{ answer: GuardAnswer } | { verdict: Verdict }> => {
    const t0 = process.hrtime.bigint();
    try {
      return { answer: await call(ex, phase, segments) };
    } catch (err) {
      if (!(err instanceof GuardError)) throw err;
      // the app went away mid-call: the runner has already ended the exchange, and a cut call is no guard failure
      if (ex.signal.aborted) throw err;
      return { verdict: tools.failed(ex, phase, err.message) };
    } finally {
      tools.observe(phase, t0);
    }
  };

  const toGuard = (segs: readonly TextSegment[]): GuardSegment[] => segs.map((s) => ({ id: s.id, role: s.role, kind: s.kind, text: s.text }));

  const onRequest = async (ex: Exchange): Promise<Verdict> => {
    const t = tools.requestTexts(ex);
    if (t === 'empty') return CONTINUE;
    if ('action' in t) return t;
    if (t.segments.length === 0) return CONTINUE;
    const j = await judge(ex, 'request', toGuard(t.segments));
    if ('verdict' in j) return j.verdict;
    const a = j.answer;
    if (a.action === 'deny') {
      tools.record(ex, 'request', tools.actionName('deny'));
      return guardDeny(a.reason);
    }
    if (a.action === 'allow') {
      tools.record(ex, 'request', 'allow');
      return CONTINUE;
    }
    const byId = new Map(t.segments.map((s) => [s.id, s]));
    const edits = new Map<TextSegment, string>();
    for (const r of a.segments) {
      const seg = byId.get(r.id);
      if (!seg) return tools.failed(ex, 'request', UNKNOWN_ID);
      edits.set(seg, r.text);
    }
    tools.record(ex, 'request', tools.actionName('rewrite'), { segments: edits.size });
    return tools.writeRequest(ex, edits); // writes nothing in audit mode
  };

  const streamHooks = (ex: Exchange, codec: ContentCodec): ResponseHooks => {
    let held: { ev: StreamEvent; segs: TextSegment[] }[] = [];
    let size = 0;
    let since = 0;
    const judgeWindow = async (): Promise<EventResult> => {
      const batch = held;
      held = [];
      size = 0;
      // one segment per channel: the window's text on it, in order
      const windows = new Map<string, { seg: TextSegment; text: string }>();
      for (const h of batch) for (const s of h.segs) {
        const id = s.channel ?? s.id;
        const w = windows.get(id);
        if (w) w.text += s.text;
        else windows.set(id, { seg: s, text: s.text });
      }
      if (windows.size === 0) return batch.map((h) => h.ev);
      const j = await judge(ex, 'response', [...windows].map(([id, w]) => ({ id, role: w.seg.role, kind: w.seg.kind, text: w.text })));
      const unchanged = batch.map((h) => h.ev);
      // in audit mode a denial is recorded here and the held window goes on as it came (common.ts: enforce)
      if ('verdict' in j) return j.verdict.action === 'deny' ? (tools.enforce(ex, 'response', j.verdict) ?? unchanged) : unchanged;
      const a = j.answer;
      if (a.action === 'deny') {
        tools.record(ex, 'response', tools.actionName('deny'));
        return tools.enforce(ex, 'response', guardDeny(a.reason)) ?? unchanged;
      }
      if (a.action !== 'rewrite') return unchanged;
      // an id the guard was not sent is a broken answer, as on the request side: the failure mode decides
      if (a.segments.some((s) => !windows.has(s.id))) {
        const v = tools.failed(ex, 'response', UNKNOWN_ID);
        return v.action === 'deny' ? (tools.enforce(ex, 'response', v) ?? unchanged) : unchanged;
      }
      // a rewritten window goes out in its first event; the channel's later events in the window carry ''
      const rewrites = new Map(a.segments.map((s) => [s.id, s.text]));
      const done = new Set<string>();
      tools.record(ex, 'response', tools.actionName('rewrite'), { segments: rewrites.size });
      if (tools.audit) return unchanged;
      return batch.map((h) => {
        const touched = h.segs.filter((s) => rewrites.has(s.channel ?? s.id));
        if (touched.length === 0) return h.ev;
        const payload = obj(eventJson(h.ev))!;
        const dec = codec.decodeEvent?.(payload);
        const doc = (dec ? dec.inner : payload) as Record<string, unknown>;
        for (const s of touched) {
          const id = s.channel ?? s.id;
          setText(doc, s.path, done.has(id) ? '' : rewrites.get(id)!);
          done.add(id);
        }
        return withJson(h.ev, dec ? dec.wrap(doc) : doc);
      });
    };
    return {
      async event(ev) {
        const payload = obj(eventJson(ev));
        const dec = payload && codec.decodeEvent?.(payload);
        const doc = dec ? dec.inner : payload;
        const segs = doc ? codec.event(doc, ev.sse?.event ?? ev.message?.headers[':event-type'] ?? 'message') : [];
        if (segs.length === 0 && held.length === 0) return [ev];
        const t = env.services.now();
        if (held.length === 0) since = t;
        held.push({ ev, segs });
        for (const s of segs) size += s.text.length;
        return size >= STREAM_WINDOW || !payload || t - since >= STREAM_MAX_WAIT_MS ? judgeWindow() : [];
      },
      flush: () => (held.length > 0 ? judgeWindow() : []),
    };
  };

  return {
    ...tools.props,
    // the guard's deadline is enforced here (to count it and follow the failure mode); the runner's is a backstop
    timeoutMs: timeout + 1000,
    ...(inRequest(f) && { onRequest }),
    ...(inResponse(f) && {
      onResponse(ex, head, framing) {
        if (head.status >= 300) return undefined;
        const codec = ex.adapter.codec?.(ex.described);
        if (codec && (framing === 'sse' || framing === 'eventstream')) return streamHooks(ex, codec);
        // anything else that is not a JSON body cannot be judged: the failure mode decides (common.ts)
        if (!codec || framing !== 'json') return tools.responseHooks(ex, head, framing, () => ({ delta: () => '', release: () => '', whole: (s) => s.text, holding: () => [] }), true);
        return {
          async body(body) {
            const json = body.json();
            if (!json || !codec) return tools.uninspectable(ex, 'response', 'body is not a JSON object');
            const segs = codec.response(json);
            if (segs.length === 0) return CONTINUE;
            const j = await judge(ex, 'response', toGuard(segs));
            if ('verdict' in j) return j.verdict;
            const a = j.answer;
            if (a.action === 'deny') {
              tools.record(ex, 'response', tools.actionName('deny'));
              return guardDeny(a.reason);
            }
            if (a.action !== 'rewrite') return CONTINUE;
            // an id the guard was not sent is a broken answer, as on the request side: the failure mode decides
            const byId = new Map(segs.map((s) => [s.id, s]));
            if (a.segments.some((r) => !byId.has(r.id))) return tools.failed(ex, 'response', UNKNOWN_ID);
            if (tools.audit) {
              tools.record(ex, 'response', 'would-rewrite', { segments: a.segments.length });
              return CONTINUE;
            }
            body.edit((j) => {
              for (const r of a.segments) setText(j, byId.get(r.id)!.path, r.text);
            });
            tools.record(ex, 'response', 'rewrite', { segments: a.segments.length });
            return CONTINUE;
          },
        };
      },
    }),
    close: () => agent.close(),
  };
}
