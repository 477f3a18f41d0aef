import type { TextSegment } from '../../../shared/providers/content.js';
import type { Deny } from '../types.js';
import type { TextRewriter } from './stream-text.js';

// Pattern filters on a response: each text is scanned whole (JSON) or, on a stream, per channel over a sliding
// window. The last `window` characters of a channel are held back until more text arrives or the channel ends,
// so a match up to `window` characters long is seen whole before any of it reaches the app; a match that began
// before the cut is held until it is complete. A scanner whose finds can be longer than the window (a PEM block)
// also says where one may still be growing (`pending`): text from there is held too, until it is complete or
// can no longer be one, so the hold is bounded by the longest find, not by a guess. Added delay per event: at
// most `window` characters, or, while a long find is open, the find so far.

export interface Match {
  readonly start: number;
  readonly end: number;
  readonly kind: string;
}

/** Decides over the matches of one piece of text: the text to send (redacted, or as it is), or a denial. */
export type MatchAction = (text: string, matches: readonly Match[], json: boolean) => string | Deny;

/** Characters of already sent text a scan still sees before what it holds (look-behinds, `\b`). */
const CONTEXT = 8;

export class ScanRewriter implements TextRewriter {
  private readonly held = new Map<string, { text: string; json: boolean }>();
  /** The last characters sent on each channel: context for the next scan, never sent again. */
  private readonly before = new Map<string, string>();

  constructor(
    private readonly scan: (text: string) => Match[],
    private readonly act: MatchAction,
    private readonly window: number,
    /** Where a find that may still grow begins at the end of `text` (`text.length`: none). */
    private readonly pending?: (text: string) => number,
  ) {}

  delta(channel: string, seg: TextSegment): string | Deny {
    const text = (this.held.get(channel)?.text ?? '') + seg.text;
    const open = this.pending ? this.pending(text) : text.length;
    if (open === 0) {
      // all of it is one find in the making: nothing to decide until it ends (no scan per delta meanwhile)
      this.held.set(channel, { text, json: seg.json === true });
      return '';
    }
    const matches = this.scanAfter(channel, text);
    let cut = Math.min(Math.max(0, text.length - this.window), open);
    let final = matches.filter((m) => m.start < cut);
    for (const m of final) cut = Math.max(cut, m.end);
    if (seg.json === true) {
      // JSON source is never cut inside an escape: the held rest would start with its letter (`n` of `\n`)
      const owner = escapeOwners(text)?.[cut] ?? -1;
      if (owner >= 0) {
        cut = owner;
        final = final.filter((m) => m.start < cut);
      }
    }
    // a later match that overlaps the cut waits whole with the rest
    const r = this.act(text.slice(0, cut), final, seg.json === true);
    if (typeof r !== 'string') return r;
    if (cut > 0) this.before.set(channel, ((this.before.get(channel) ?? '') + text.slice(0, cut)).slice(-CONTEXT));
    if (cut < text.length) this.held.set(channel, { text: text.slice(cut), json: seg.json === true });
    else this.held.delete(channel);
    return r;
  }

  release(channel: string): string | Deny {
    const h = this.held.get(channel);
    if (!h) return '';
    this.held.delete(channel);
    const r = this.act(h.text, this.scanAfter(channel, h.text), h.json);
    this.before.set(channel, ((this.before.get(channel) ?? '') + h.text).slice(-CONTEXT));
    return r;
  }

  /** Matches in `text`, scanned after the channel's last sent characters (so a look-behind sees them). */
  private scanAfter(channel: string, text: string): Match[] {
    const ctx = this.before.get(channel) ?? '';
    if (ctx === '') return this.scan(text);
    const out: Match[] = [];
    for (const m of this.scan(ctx + text)) if (m.start >= ctx.length) out.push({ start: m.start - ctx.length, end: m.end - ctx.length, kind: m.kind });
    return out;
  }

  whole(seg: TextSegment): string | Deny {
    return this.act(seg.text, this.scan(seg.text), seg.json === true);
  }

  holding(): Iterable<string> {
    return this.held.keys();
  }
}

/**
 * For JSON source (tool arguments as text, partial_json): for each index strictly inside an escape sequence
 * (`\n`, `\"`, `\u00e9`), the index where that escape starts; -1 elsewhere. Undefined when there is none.
 */
function escapeOwners(text: string): Int32Array | undefined {
  if (!text.includes('\\')) return undefined;
  const owner = new Int32Array(text.length + 1).fill(-1);
  for (let i = 0; i < text.length; i++) {
    if (text[i] !== '\\') continue;
    const full = i + (text[i + 1] === 'u' ? 6 : 2);
    const end = Math.min(text.length, full);
    for (let j = i + 1; j < end; j++) owner[j] = i;
    // an escape the text ends inside (a stream delta cut after `\`): its end is inside it too, so a cut there
    // holds the escape for the next delta instead of sending a lone backslash
    if (full > text.length) owner[text.length] = i;
    i = end - 1;
  }
  return owner;
}

/**
 * `text` with each match replaced (matches sorted, not overlapping). In JSON source (`json`), a match is first
 * shrunk to whole characters: one that starts or ends inside an escape sequence would leave half of it behind
 * (`\nada@example.com` matched from the `n` left a lone backslash, and the provider got invalid JSON).
 */
export function replaceMatches(text: string, matches: readonly Match[], replacement: (m: Match, value: string) => string, json = false): string {
  if (json) matches = outsideEscapes(text, matches);
  if (matches.length === 0) return text;
  let out = '';
  let at = 0;
  for (const m of matches) {
    out += text.slice(at, m.start) + replacement(m, text.slice(m.start, m.end));
    at = m.end;
  }
  return out + text.slice(at);
}

function outsideEscapes(text: string, matches: readonly Match[]): readonly Match[] {
  const owner = matches.length === 0 ? undefined : escapeOwners(text);
  if (!owner) return matches;
  const out: Match[] = [];
  for (const m of matches) {
    let start = m.start;
    let end = m.end;
    const s = owner[start]!;
    if (s >= 0) for (start = s + 1; start < text.length && owner[start] === s; start++);
    const e = owner[end]!;
    if (e >= 0) end = e;
    if (start < end) out.push(start === m.start && end === m.end ? m : { ...m, start, end });
  }
  return out;
}

/** Counts matches by kind. */
export function countKinds(matches: readonly Match[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of matches) out[m.kind] = (out[m.kind] ?? 0) + 1;
  return out;
}
