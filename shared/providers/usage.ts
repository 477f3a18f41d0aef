// The body-format half of usage reading, shared by all adapters: pick the framing from the response's
// content type (SSE, AWS event stream, or one JSON document) and hand the adapter whole events or the parsed
// document. Adapters only say what a usage-bearing event looks like.

import { brotliDecompressSync, gunzipSync, inflateSync } from 'node:zlib';
import { EventStreamDecoder, type EventStreamMessage } from './event-stream.js';
import { SseParser, type SseEvent } from './sse.js';
import type { RequestDescription, ResponseMeta, Usage, UsageReader, UsageResult } from './types.js';

export type { EventStreamMessage, SseEvent };

/** A count as providers send it: a non-negative safe integer, else absent. */
export function count(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : undefined;
}

/** Sum of the counts that are present; absent when none is. */
export function sumPresent(...vs: (number | undefined)[]): number | undefined {
  let total: number | undefined;
  for (const v of vs) if (v !== undefined) total = (total ?? 0) + v;
  return total;
}

/** Drops absent fields so results compare and log cleanly; undefined when nothing was reported. */
export function compactUsage(u: Usage): Usage | undefined {
  const out: Usage = {};
  for (const k of ['input', 'output', 'cachedInput', 'cacheWriteInput', 'reasoning'] as const) {
    if (u[k] !== undefined) out[k] = u[k];
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

/** What an adapter does with the events or document of one response; `result` is asked once at the end. */
export interface UsageHandlers {
  sse?(ev: SseEvent): void;
  eventStream?(m: EventStreamMessage): void;
  /** The whole body parsed as JSON (any JSON value: Gemini streams without SSE send an array). */
  json?(doc: unknown): void;
  result(): UsageResult;
}

/** Non-streamed bodies over this size are not parsed for usage (counted as unreadable). */
export const MAX_JSON_BODY = 32 * 1024 * 1024;

export function header(res: ResponseMeta, name: string): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function mediaType(res: ResponseMeta): string {
  return (header(res, 'content-type') ?? '').split(';')[0]!.trim().toLowerCase();
}

/** A reader for the usage in one response of `adapter`, framing its bytes by content type. */
export function usageReader(adapter: { usageHandlers(d: RequestDescription, res: ResponseMeta): UsageHandlers }, d: RequestDescription, res: ResponseMeta): UsageReader {
  return bodyUsageReader(res, adapter.usageHandlers(d, res));
}

/** A reader that frames the body by its content type and feeds `h`. */
export function bodyUsageReader(res: ResponseMeta, h: UsageHandlers): UsageReader {
  const type = mediaType(res);
  if (type === 'text/event-stream') {
    const p = new SseParser((ev) => h.sse?.(ev));
    return { push: (c) => p.push(c), finish: () => h.result() };
  }
  if (type === 'application/vnd.amazon.eventstream') {
    const d = new EventStreamDecoder((m) => h.eventStream?.(m));
    return {
      push: (c) => d.push(c),
      finish: () => (d.failed ? { ...h.result(), unreadable: true } : h.result()),
    };
  }
  return jsonBodyReader(res, h);
}

function jsonBodyReader(res: ResponseMeta, h: UsageHandlers): UsageReader {
  if (!h.json) return { push: () => {}, finish: () => h.result() };
  const onJson = h.json;
  const pieces: Buffer[] = [];
  let size = 0;
  let tooLarge = false;
  return {
    push(chunk) {
      if (tooLarge) return;
      size += chunk.length;
      if (size > MAX_JSON_BODY) {
        tooLarge = true;
        pieces.length = 0;
      } else pieces.push(chunk);
    },
    finish() {
      if (tooLarge) return { ...h.result(), unreadable: true };
      const body = decode(Buffer.concat(pieces, size), header(res, 'content-encoding'));
      let doc: unknown;
      try {
        doc = body === undefined || body.length === 0 ? undefined : JSON.parse(body.toString('utf8'));
      } catch {
        doc = undefined;
      }
      if (doc === undefined) return { ...h.result(), unreadable: true };
      onJson(doc);
      return h.result();
    },
  };
}

/**
 * Undoes a content encoding. The proxy asks upstream for identity, so this is the exception path; an encoding
 * it cannot undo (or a corrupt body) yields undefined.
 */
function decode(body: Buffer, encoding: string | undefined): Buffer | undefined {
  const enc = (encoding ?? 'identity').trim().toLowerCase();
  try {
    if (enc === 'identity' || enc === '') return body;
    if (enc === 'gzip' || enc === 'x-gzip') return gunzipSync(body, { maxOutputLength: MAX_JSON_BODY });
    if (enc === 'br') return brotliDecompressSync(body, { maxOutputLength: MAX_JSON_BODY });
    if (enc === 'deflate') return inflateSync(body, { maxOutputLength: MAX_JSON_BODY });
  } catch {
    return undefined;
  }
  return undefined;
}

/** JSON.parse that yields undefined instead of throwing. */
export function tryJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
