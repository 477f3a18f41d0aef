import { isObj } from '../../shared/json.js';

// One body per exchange side: the bytes as they came, plus a JSON view parsed at most once, on first use.
// Exactly one of the two is authoritative at a time: after `edit`, the JSON is, and the bytes are serialised once
// when asked for; after `replace`, the bytes are, and the JSON view is parsed again if someone asks. So no reader
// ever sees a stale copy, and a body nobody changed goes on byte for byte.

/** A mutable JSON object view of a body. */
export type JsonRecord = Record<string, unknown>;

/** Why a body has no JSON view. */
export type NoJsonReason = 'empty' | 'not_json' | 'not_object' | 'invalid_utf8' | 'too_deep';

/** Nesting deeper than this is refused: JSON.parse and every walker over it are recursive. */
export const MAX_JSON_DEPTH = 128;

const decoder = new TextDecoder('utf-8', { fatal: true });

export class BodyDocument {
  private raw: Buffer;
  /** undefined: not parsed yet; null: parsed, not a JSON object. */
  private view: JsonRecord | null | undefined;
  private why: NoJsonReason | undefined;
  private jsonDirty = false;
  private edited = false;

  constructor(bytes: Buffer) {
    this.raw = bytes;
  }

  /** True once anything changed the body (the runner then sends the new bytes with a new content-length). */
  get changed(): boolean {
    return this.edited;
  }

  /** The JSON object view (parsed on first call, shared by all readers), or undefined when the body is not one. */
  json(): Readonly<JsonRecord> | undefined {
    if (this.view === undefined) this.parse();
    return this.view ?? undefined;
  }

  /** Why `json()` is undefined; undefined when it is not. */
  get noJson(): NoJsonReason | undefined {
    if (this.view === undefined) this.parse();
    return this.why;
  }

  /**
   * Edits the JSON view in place; the bytes are re-serialised once, when next asked for. Returns false (and calls
   * nothing) when the body is not a JSON object. `fn` returning false means it changed nothing.
   */
  edit(fn: (json: JsonRecord) => boolean | void): boolean {
    if (this.view === undefined) this.parse();
    if (!this.view) return false;
    if (fn(this.view) === false) return true;
    this.jsonDirty = true;
    this.edited = true;
    return true;
  }

  /** Replaces the bytes wholesale (a byte-exact rewrite); the JSON view is parsed again if asked for. */
  replace(bytes: Buffer): void {
    if (this.jsonDirty) this.jsonDirty = false;
    this.raw = bytes;
    this.view = undefined;
    this.why = undefined;
    this.edited = true;
  }

  /** The bytes to send: the original ones when nothing changed. */
  bytes(): Buffer {
    if (this.jsonDirty) {
      this.raw = Buffer.from(JSON.stringify(this.view));
      this.jsonDirty = false;
    }
    return this.raw;
  }

  get length(): number {
    return this.bytes().length;
  }

  private parse(): void {
    const b = this.raw;
    this.view = null;
    let i = 0;
    while (i < b.length && (b[i] === 0x20 || b[i] === 0x0a || b[i] === 0x0d || b[i] === 0x09)) i++;
    if (i === b.length) {
      this.why = 'empty';
      return;
    }
    if (b[i] !== 0x7b) {
      this.why = b[i] === 0x5b ? 'not_object' : 'not_json';
      return;
    }
    let text: string;
    try {
      text = decoder.decode(b);
    } catch {
      this.why = 'invalid_utf8';
      return;
    }
    if (!fewBrackets(b) && !shallowEnough(text)) {
      this.why = 'too_deep';
      return;
    }
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch {
      this.why = 'not_json';
      return;
    }
    if (isObj(v)) this.view = v;
    else this.why = 'not_object';
  }
}

/**
 * At most MAX_JSON_DEPTH opening brackets in all: the depth cannot exceed it, whatever the strings hold. Counted
 * with Buffer.indexOf (native) on the bytes (UTF-8 never uses 0x5b or 0x7b inside a multi-byte character), so a
 * typical request skips shallowEnough's character-by-character walk, ~5 % of the proxy's instructions per request.
 */
function fewBrackets(b: Buffer): boolean {
  let n = 0;
  for (const bracket of [0x7b, 0x5b]) {
    for (let i = b.indexOf(bracket); i >= 0; i = b.indexOf(bracket, i + 1)) if (++n > MAX_JSON_DEPTH) return false;
  }
  return true;
}

/** Bracket depth stays within MAX_JSON_DEPTH (strings skipped); a linear scan before the recursive parse. */
function shallowEnough(text: string): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > MAX_JSON_DEPTH) return false;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return true;
}
