import type { JsonObject } from './request.js';

// Content codecs: per wire format, the texts a provider will read in a request (messages and content parts,
// system prompts, tool-call arguments and tool results) and the texts the app receives in a response or a
// stream event. Filters work on these segments and never learn a wire format; one provider adapter picks its
// codec per request (`ProviderAdapter.codec`). Keys, ids, numbers and base64 data are never segments.

/** Where a segment's text sits in its document: object keys and array indexes from the root. */
export type JsonPath = readonly (string | number)[];

export type SegmentKind = 'text' | 'tool_arguments' | 'tool_result' | 'reasoning';

export interface TextSegment {
  /** Unique within its document (the path, joined). */
  readonly id: string;
  readonly path: JsonPath;
  /** Who the text is from: `system`, `developer`, `user`, `assistant`, `tool`. */
  readonly role: string;
  readonly kind: SegmentKind;
  readonly text: string;
  /**
   * Stream deltas only: the channel the text continues on in later events (a choice, a content block, a tool
   * call's arguments). Text on one channel is one string cut into pieces; a segment without a channel is whole.
   */
  readonly channel?: string;
  /** The text is JSON source (function-call arguments as OpenAI sends them, Anthropic's partial_json). */
  readonly json?: true;
}

export interface ContentCodec {
  /** The wire format's name (`openai-chat`, `anthropic-messages`, `bedrock-converse`, …). */
  readonly format: string;
  /** Texts the provider reads in a request body, in document order. */
  request(json: JsonObject): TextSegment[];
  /** Texts the app reads in a non-streamed response body. */
  response(json: JsonObject): TextSegment[];
  /**
   * Delta texts in one stream event's JSON payload; `name` is the SSE event name or the AWS `:event-type`.
   * Payloads that wrap their JSON (Bedrock InvokeModel's base64 `bytes`) are unwrapped by `decodeEvent`.
   */
  event(payload: JsonObject, name: string): TextSegment[];
  /** For wrapped event payloads: the inner JSON document and how to wrap it back. Absent for plain payloads. */
  decodeEvent?(payload: JsonObject): { inner: JsonObject; wrap(inner: JsonObject): JsonObject } | undefined;
}

/** Sets the string at `path` in `root` (in place). Returns false when the path does not lead to a string. */
export function setText(root: Record<string, unknown>, path: JsonPath, text: string): boolean {
  let node: unknown = root;
  for (let i = 0; i < path.length - 1; i++) {
    const k = path[i]!;
    if (node === null || typeof node !== 'object') return false;
    node = (node as Record<string | number, unknown>)[k];
  }
  const last = path[path.length - 1];
  if (last === undefined || node === null || typeof node !== 'object') return false;
  const parent = node as Record<string | number, unknown>;
  if (typeof parent[last] !== 'string') return false;
  parent[last] = text;
  return true;
}

/** Collects segments; `add` skips values that are not strings (and empty strings: nothing to read). */
export class Segments {
  readonly list: TextSegment[] = [];
  add(value: unknown, path: JsonPath, role: string, kind: SegmentKind, channel?: string, json?: true): void {
    if (typeof value !== 'string' || value === '') return;
    this.list.push({ id: path.join('.'), path, role, kind, text: value, ...(channel !== undefined && { channel }), ...(json && { json }) });
  }
  /** A string holding JSON source (tool-call arguments as text). */
  addJson(value: unknown, path: JsonPath, role: string, channel?: string): void {
    this.add(value, path, role, 'tool_arguments', channel, true);
  }
  /**
   * Every string value inside a structured tool input or result (object keys are not text, and nor are
   * numbers); depth-bounded, as the body parser already is.
   */
  walk(value: unknown, path: JsonPath, role: string, kind: SegmentKind, depth = 0): void {
    if (depth > 64) return;
    if (typeof value === 'string') this.add(value, path, role, kind);
    else if (Array.isArray(value)) value.forEach((v, i) => this.walk(v, [...path, i], role, kind, depth + 1));
    else if (value !== null && typeof value === 'object') {
      for (const [k, v] of Object.entries(value)) this.walk(v, [...path, k], role, kind, depth + 1);
    }
  }
}

/**
 * An index field as a channel key: numbers and strings as they are, anything else `0`. `String(v)` would throw
 * on an object whose toString is not callable (`{"toString":1}` is valid JSON a provider could send).
 */
export function indexKey(v: unknown): string {
  return typeof v === 'number' || typeof v === 'string' ? String(v) : '0';
}

/** `v` as an array (empty when it is not one). */
export function arr(v: unknown): readonly unknown[] {
  return Array.isArray(v) ? v : [];
}

/** `v` as a plain object, or undefined. */
export function obj(v: unknown): Record<string, unknown> | undefined {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}
