// OpenAI sends usage in a chat stream only when the request sets `stream_options.include_usage`. The proxy sets
// it for clients that did not, and undoes its effects on the way back, as the API reference describes them:
// "an additional chunk will be streamed before the data: [DONE] message … the choices field will always be an
// empty array. All other chunks will also include a usage field, but with a null value." The stripper drops
// that chunk and removes the `"usage":null` member from the others, so the client gets byte for byte the stream
// it would have had without the option.

import { isObject, type JsonObject } from './request.js';
import { LineSplitter } from './sse.js';
import type { ChunkTransform } from './types.js';
import { tryJson } from './usage.js';

const EMPTY = Buffer.alloc(0);

/**
 * The body with `stream_options.include_usage: true`, or undefined when it is not a streaming request or already
 * asks. When the body has no `stream_options`, the member is inserted as text after the opening brace and every
 * other byte stays as the client sent it; an existing `stream_options` object is merged by re-serialising.
 */
export function injectIncludeUsage(body: Buffer, json: JsonObject): Buffer | undefined {
  if (json.stream !== true) return undefined;
  const so = json.stream_options;
  if (isObject(so) && so.include_usage === true) return undefined;
  if (so === undefined) {
    const brace = body.indexOf(0x7b);
    if (brace === -1) return undefined;
    return Buffer.concat([body.subarray(0, brace + 1), Buffer.from('"stream_options":{"include_usage":true},'), body.subarray(brace + 1)]);
  }
  return Buffer.from(JSON.stringify({ ...json, stream_options: { ...(isObject(so) ? so : {}), include_usage: true } }));
}

/**
 * Removes the top-level member `key` whose value is the literal `null` from a JSON object text, with one
 * adjacent comma, leaving every other byte alone. Undefined when there is no such member.
 */
export function removeNullMember(json: string, key: string): string | undefined {
  let depth = 0;
  let inString = false;
  let memberStart = -1; // index just after the `{` or `,` that opened the current top-level member
  let prevComma = -1; // index of the comma before the current member, -1 for the first one
  for (let i = 0; i < json.length; i++) {
    const c = json.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
      continue;
    }
    if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      depth++;
      if (depth === 1 && c === 0x7b) memberStart = i + 1;
    } else if ((c === 0x2c && depth === 1) || ((c === 0x7d || c === 0x5d) && depth === 1)) {
      if (memberStart !== -1 && isNullMember(json.slice(memberStart, i), key)) {
        if (prevComma !== -1) return json.slice(0, prevComma) + json.slice(i);
        if (c === 0x2c) return json.slice(0, memberStart) + json.slice(i + 1);
        return json.slice(0, memberStart) + json.slice(i);
      }
      if (c === 0x2c) {
        prevComma = i;
        memberStart = i + 1;
      } else depth--;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return undefined;
}

function isNullMember(member: string, key: string): boolean {
  const m = /^\s*"((?:[^"\\]|\\.)*)"\s*:\s*null\s*$/.exec(member);
  return m !== null && m[1] === key;
}

const DATA = Buffer.from('data:');
const USAGE_KEY = Buffer.from('"usage"');
/** How OpenAI ends every chunk but the usage chunk when include_usage is set. */
const NULL_USAGE_TAIL = Buffer.from(',"usage":null}');

const isDataLine = (b: Buffer): boolean => b.length >= 5 && b.compare(DATA, 0, 5, 0, 5) === 0;

/** Index of the line terminator in a raw line (its length when there is none). */
function contentEnd(raw: Buffer): number {
  let end = raw.length;
  while (end > 0 && (raw[end - 1] === 0x0a || raw[end - 1] === 0x0d)) end--;
  return end;
}

/** Drops the usage-only chunk and `"usage":null` members from a chat-completions SSE stream. */
export class IncludeUsageStripper implements ChunkTransform {
  private readonly lines: LineSplitter;
  /** Raw lines of the event being read; views into the current chunk until `push` returns. */
  private block: Buffer[] = [];
  private dataLines = 0;
  private out: Buffer[] = [];
  /** The last finished event was dropped: the LF of its CRLF, arriving in the next chunk, goes with it. */
  private dropped = false;

  constructor() {
    this.lines = new LineSplitter(
      (line, raw) => this.line(line, raw),
      (raw) => {
        if (this.block.length > 0) this.block.push(raw);
        else if (!this.dropped) this.out.push(raw);
      },
    );
  }

  push(chunk: Buffer): Buffer {
    this.lines.push(chunk);
    // An unfinished event outlives this call: copy its lines off the caller's buffer.
    if (this.block.length > 0) this.block = this.block.map((b) => Buffer.from(b));
    return this.take();
  }

  flush(): Buffer {
    // An event the stream did not finish goes out as it came: there is nothing sound to rewrite.
    for (const b of this.block) this.out.push(b);
    this.block = [];
    this.out.push(this.lines.takePartial());
    return this.take();
  }

  private take(): Buffer {
    if (this.out.length === 0) return EMPTY;
    const b = this.out.length === 1 ? this.out[0]! : Buffer.concat(this.out);
    this.out = [];
    return b;
  }

  private line(line: Buffer, raw: Buffer): void {
    this.dropped = false;
    if (line.length > 0) {
      if (isDataLine(line)) this.dataLines++;
      this.block.push(raw);
      return;
    }
    this.block.push(raw);
    const block = this.block;
    const dataLines = this.dataLines;
    this.block = [];
    this.dataLines = 0;
    const kept = this.rewrite(block, dataLines);
    this.dropped = kept.length === 0;
    for (const b of kept) this.out.push(b);
  }

  /** One whole event (its raw lines, the blank line last) → what the client gets. */
  private rewrite(block: Buffer[], dataLines: number): Buffer[] {
    // OpenAI writes each chunk as one `data:` line; anything else is passed through untouched.
    if (dataLines !== 1) return block;
    const i = block.findIndex(isDataLine);
    const raw = block[i]!;
    if (raw.indexOf(USAGE_KEY) === -1) return block;
    const end = contentEnd(raw);
    // The common chunk: `…,"usage":null}` closes the top-level object; cut those bytes without parsing.
    if (end >= NULL_USAGE_TAIL.length && raw.compare(NULL_USAGE_TAIL, 0, NULL_USAGE_TAIL.length, end - NULL_USAGE_TAIL.length, end) === 0) {
      return replaceLine(block, i, Buffer.concat([raw.subarray(0, end - NULL_USAGE_TAIL.length), raw.subarray(end - 1)]));
    }
    const text = raw.toString('utf8', 0, end);
    const start = text.charCodeAt(5) === 0x20 ? 6 : 5;
    const json = text.slice(start);
    const doc = tryJson(json);
    if (!isObject(doc)) return block;
    if (isObject(doc.usage)) return Array.isArray(doc.choices) && doc.choices.length === 0 ? [] : block;
    if (doc.usage !== null) return block;
    const stripped = removeNullMember(json, 'usage');
    if (stripped === undefined) return block;
    return replaceLine(block, i, Buffer.concat([Buffer.from(text.slice(0, start) + stripped, 'utf8'), raw.subarray(end)]));
  }
}

function replaceLine(lines: Buffer[], i: number, line: Buffer): Buffer[] {
  const copy = lines.slice();
  copy[i] = line;
  return copy;
}
