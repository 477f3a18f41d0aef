import { obj, setText, type ContentCodec, type TextSegment } from '../../../shared/providers/content.js';
import { eventJson, withJson, type StreamEvent } from '../framing.js';
import type { Deny, EventResult } from '../types.js';

// Text filters over a stream, event by event. The codec names each event's delta texts and the channel each
// continues on (a choice, a content block, a tool call). A rewriter sees each delta with what it held back on
// that channel and says what to send now; what it holds (never more than its window: a placeholder's length
// for restore, a pattern's span for scanning) goes out with the next delta on the channel, or, when an event
// arrives that ends or leaves the channel, in a copy of the channel's last delta event placed just before it.
// Events with nothing to change are relayed byte for byte.

export interface TextRewriter {
  /** A delta on `channel`: the text to send in its place now (the rest is held), or a denial. */
  delta(channel: string, seg: TextSegment): string | Deny;
  /** Everything held on `channel`, to send now ('' when nothing). */
  release(channel: string): string | Deny;
  /** A whole text (a JSON response's, or a stream's `done` event). */
  whole(seg: TextSegment): string | Deny;
  /** Channels with text held back. */
  holding(): Iterable<string>;
}

interface Template {
  readonly ev: StreamEvent;
  readonly seg: TextSegment;
}

const isDeny = (r: string | Deny): r is Deny => typeof r !== 'string';

/** Keep-alives carry no text and end no channel: they never release held text. */
function keepAlive(ev: StreamEvent, payload: Record<string, unknown> | undefined): boolean {
  if (!ev.sse && !ev.message) return true;
  if (ev.sse?.event === 'ping' || payload?.type === 'ping') return true;
  return false;
}

export function streamHooks(codec: ContentCodec, rw: TextRewriter): { event(ev: StreamEvent): EventResult; flush(): EventResult } {
  const templates = new Map<string, Template>();

  /** A copy of the channel's last delta event carrying `text`. */
  const synth = (channel: string, text: string): StreamEvent | undefined => {
    const t = templates.get(channel);
    if (!t) return undefined;
    const payload = obj(eventJson(t.ev));
    if (!payload) return undefined;
    const dec = codec.decodeEvent?.(payload);
    const doc = (dec ? dec.inner : payload) as Record<string, unknown>;
    setText(doc, t.seg.path, text);
    return withJson(t.ev, dec ? dec.wrap(doc) : doc);
  };

  const releaseExcept = (keep: ReadonlySet<string>, out: StreamEvent[]): Deny | undefined => {
    for (const ch of [...rw.holding()]) {
      if (keep.has(ch)) continue;
      const r = rw.release(ch);
      if (isDeny(r)) return r;
      if (r !== '') {
        const e = synth(ch, r);
        if (e) out.push(e);
      }
    }
    return undefined;
  };

  return {
    event(ev) {
      if (ev.message && ev.message.headers[':message-type'] !== 'event') return [ev];
      const parsed = eventJson(ev);
      const payload = obj(parsed);
      if (keepAlive(ev, payload)) return [ev];
      const out: StreamEvent[] = [];
      if (!payload) {
        // `[DONE]` and other non-JSON data end every channel
        const d = releaseExcept(new Set(), out);
        return d ?? [...out, ev];
      }
      const dec = codec.decodeEvent?.(payload);
      const doc = (dec ? dec.inner : payload) as Record<string, unknown>;
      const name = ev.sse?.event ?? ev.message?.headers[':event-type'] ?? 'message';
      const segs = codec.event(doc, name);
      const here = new Set<string>();
      for (const s of segs) if (s.channel !== undefined) here.add(s.channel);
      const d = releaseExcept(here, out);
      if (d) return d;
      let changed = false;
      for (const seg of segs) {
        const r = seg.channel !== undefined ? rw.delta(seg.channel, seg) : rw.whole(seg);
        if (isDeny(r)) return r;
        if (seg.channel !== undefined) templates.set(seg.channel, { ev, seg });
        if (r !== seg.text) {
          setText(doc, seg.path, r);
          changed = true;
        }
      }
      out.push(changed ? withJson(ev, dec ? dec.wrap(doc) : doc) : ev);
      return out;
    },
    flush() {
      const out: StreamEvent[] = [];
      const d = releaseExcept(new Set(), out);
      return d ?? out;
    },
  };
}

/** `a` then `b` over the same texts (a response scan before restoring placeholders). */
export function chainRewriters(a: TextRewriter, b: TextRewriter): TextRewriter {
  const step = (r: string | Deny, seg: TextSegment, channel?: string): string | Deny => {
    if (isDeny(r)) return r;
    const next = { ...seg, text: r };
    return channel === undefined ? b.whole(next) : r === '' ? '' : b.delta(channel, next);
  };
  const last = new Map<string, TextSegment>();
  return {
    delta(channel, seg) {
      last.set(channel, seg);
      return step(a.delta(channel, seg), seg, channel);
    },
    release(channel) {
      const seg = last.get(channel);
      const r = a.release(channel);
      if (isDeny(r)) return r;
      const mid = r !== '' && seg ? b.delta(channel, { ...seg, text: r }) : '';
      if (isDeny(mid)) return mid;
      const rest = b.release(channel);
      return isDeny(rest) ? rest : mid + rest;
    },
    whole: (seg) => step(a.whole(seg), seg),
    holding: () => new Set([...a.holding(), ...b.holding()]),
  };
}

/**
 * Audit mode: `rw` sees every text as it would (so it finds and records the same), but the app gets the texts as
 * they came, unheld and unchanged, event for event.
 */
export function observeOnly(rw: TextRewriter): TextRewriter {
  return {
    delta(channel, seg) {
      const r = rw.delta(channel, seg);
      return isDeny(r) ? r : seg.text;
    },
    release(channel) {
      const r = rw.release(channel);
      return isDeny(r) ? r : '';
    },
    whole(seg) {
      const r = rw.whole(seg);
      return isDeny(r) ? r : seg.text;
    },
    holding: () => rw.holding(),
  };
}
