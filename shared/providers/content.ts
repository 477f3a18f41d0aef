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
