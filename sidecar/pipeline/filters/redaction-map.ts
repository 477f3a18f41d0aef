import type { TextSegment } from '../../../shared/providers/content.js';
import type { TextRewriter } from './stream-text.js';

// The redaction map of one exchange: value ↔ typed placeholder (`[EMAIL_1]`, `[CREDIT_CARD_2]`). It lives in the
// exchange's private slot, in the proxy's memory only, and dies with the exchange. The same value gets the same
// placeholder within a request; a placeholder that already appears in the app's own text is never issued, so
// restoring cannot turn the app's literal text into a value.

const PLACEHOLDER = /\[[A-Z][A-Z_]{0,23}_\d{1,6}\]/g;

export class RedactionMap {
  private readonly byValue = new Map<string, string>();
  private readonly byPlaceholder = new Map<string, string>();
  private readonly counters = new Map<string, number>();
  /** Every proper prefix of every placeholder issued: what a stream may have to hold back. */
  private readonly prefixes = new Set<string>();
  private longest = 0;
  /** Texts the placeholders must not collide with (the request's own texts). */
  private avoid = '';

  /**
   * `reserved`: a map whose placeholders this one never issues. The response side of a `phase: both` filter
   * redacts into its own map reserving the request's, so a placeholder for PII new in the response can never be
   * one that restore turns into a value the app sent.
   */
  constructor(private readonly reserved?: RedactionMap) {}

  setAvoid(texts: readonly string[]): void {
    this.avoid = texts.join('\u0000');
  }

  get size(): number {
    return this.byPlaceholder.size;
  }

  /** The placeholder for `value` of `label` (`EMAIL`), issuing the next free one on first sight. */
  placeholder(label: string, value: string): string {
    const key = `${label}\u0000${value}`;
    const hit = this.byValue.get(key);
    if (hit) return hit;
    let n = this.counters.get(label) ?? 0;
    let p: string;
    do p = `[${label}_${++n}]`;
    while (this.avoid.includes(p) || this.reserved?.byPlaceholder.has(p) === true);
    this.counters.set(label, n);
    this.byValue.set(key, p);
    this.byPlaceholder.set(p, value);
    for (let i = 1; i < p.length; i++) this.prefixes.add(p.slice(0, i));
    this.longest = Math.max(this.longest, p.length);
    return p;
  }

  /** `text` with every issued placeholder replaced by its value (JSON-escaped inside JSON source). */
  restore(text: string, json: boolean): { text: string; restored: number } {
    if (this.byPlaceholder.size === 0 || !text.includes('[')) return { text, restored: 0 };
    let restored = 0;
    const out = text.replace(PLACEHOLDER, (p) => {
      const v = this.byPlaceholder.get(p);
      if (v === undefined) return p;
      restored++;
      return json ? JSON.stringify(v).slice(1, -1) : v;
    });
    return { text: out, restored };
  }

  /**
   * `text` with every value this map holds replaced by its placeholder again (raw, and JSON-escaped as restore
   * writes it in JSON source): the redactions applied to a copy of a restored response (content capture).
   */
  redactValues(text: string): string {
    if (this.byPlaceholder.size === 0) return text;
    // Longest values first: one value inside another is replaced as part of the longer.
    const entries = [...this.byPlaceholder].sort((a, b) => b[1].length - a[1].length);
    let out = text;
    for (const [p, v] of entries) {
      if (v === '') continue;
      out = out.split(v).join(p);
      const escaped = JSON.stringify(v).slice(1, -1);
      if (escaped !== v) out = out.split(escaped).join(p);
    }
    return out;
  }

  /** How many characters at the end of `text` could be the start of a placeholder (held back in a stream). */
  holdBack(text: string): number {
    const from = Math.max(0, text.length - this.longest + 1);
    for (let i = text.lastIndexOf('[', text.length - 1); i >= from; i = text.lastIndexOf('[', i - 1)) {
      if (this.prefixes.has(text.slice(i))) return text.length - i;
      if (i === 0) break;
    }
    return 0;
  }
}

/** Restores placeholders in a response; on streams holds back at most one placeholder's length per channel. */
export class RestoreRewriter implements TextRewriter {
  private readonly held = new Map<string, { text: string; json: boolean }>();
  restored = 0;

  constructor(private readonly map: RedactionMap) {}

  delta(channel: string, seg: TextSegment): string {
    const prev = this.held.get(channel);
    const text = (prev?.text ?? '') + seg.text;
    const keep = this.map.holdBack(text);
    const send = this.restoreText(text.slice(0, text.length - keep), seg.json === true);
    if (keep > 0) this.held.set(channel, { text: text.slice(text.length - keep), json: seg.json === true });
    else this.held.delete(channel);
    return send;
  }

  release(channel: string): string {
    const h = this.held.get(channel);
    this.held.delete(channel);
    return h ? this.restoreText(h.text, h.json) : '';
  }

  whole(seg: TextSegment): string {
    return this.restoreText(seg.text, seg.json === true);
  }

  holding(): Iterable<string> {
    return this.held.keys();
  }

  private restoreText(text: string, json: boolean): string {
    const r = this.map.restore(text, json);
    this.restored += r.restored;
    return r.text;
  }
}

/** The maps whose placeholders a filter restores in an exchange's response, by exchange. */
const restoring = new WeakMap<object, RedactionMap[]>();

/** Records that `map`'s placeholders are restored in the response of `ex` (before the app reads it). */
export function restoresInto(ex: object, map: RedactionMap): void {
  const list = restoring.get(ex);
  if (!list) restoring.set(ex, [map]);
  else if (!list.includes(map)) list.push(map);
}

/**
 * `text`, read from what the app received, with the values filters restored redacted again: telemetry's captured
 * completion carries the placeholders, never the app's own values that the provider never saw.
 */
export function redactRestored(ex: object, text: string): string {
  const list = restoring.get(ex);
  if (!list) return text;
  let out = text;
  for (const m of list) out = m.redactValues(out);
  return out;
}
