import { brotliDecompressSync, gunzipSync, inflateRawSync, inflateSync } from 'node:zlib';
import { CONTINUE, deny } from './deny.js';
import { appSigned, resignsBedrock } from './app-signature.js';
import type { Exchange, Processor, Verdict } from './types.js';

// Every step reads the request body: describe for the model and the operation, models and budgets through it,
// filters for the text. A body the app compressed (`content-encoding: gzip`, `deflate`, `br`, or a list of them,
// applied in order) would otherwise be opaque to all of them, and a model on a deny list would pass unseen. So
// the first step decodes it, and the decoded body is what every step reads and what the provider gets, with
// `content-encoding` removed: what was inspected is exactly what is sent (no second decoder, the provider's, to
// disagree with), and every provider takes an uncompressed body.
// Two cases keep the app's bytes. A Bedrock request the app signed with SigV4 (its signature covers the body as
// sent) when no managed credential signs it again: the model is in its path, and the filters decode a view of the
// body themselves and refuse a rewrite they could not sign (filters/common.ts). And a body that cannot be decoded
// (a coding the proxy does not know, corrupt data): each step judges it as unreadable, a filter by its failure
// mode (FailClosed: 400 naming the reason), any model rule by refusing a model it cannot read. A body that
// decodes past the proxy's body limit gets 413, as a plain one that size does.

/**
 * Largest decoded request body (a small compressed body may decode to a huge one) when the proxy names no
 * limit; the proxy passes its --max-body-bytes, so compression cannot carry a body past the limit a plain one
 * meets.
 */
export const MAX_DECODED_BODY = 32 * 1024 * 1024;

export const SUPPORTED_CODINGS = ['gzip', 'x-gzip', 'deflate', 'br', 'identity'] as const;

/** The codings of a `content-encoding` value, in the order they were applied; identity left out. */
export function codingsOf(header: string | undefined): string[] {
  return (header ?? '').split(',').map((c) => c.trim().toLowerCase()).filter((c) => c !== '' && c !== 'identity');
}

function decodeOne(coding: string, b: Buffer, max: number): Buffer {
  const opts = { maxOutputLength: max };
  switch (coding) {
    case 'gzip':
    case 'x-gzip':
      return gunzipSync(b, opts);
    case 'deflate':
      // RFC 9110 deflate is zlib-wrapped; some clients send raw deflate
      try {
        return inflateSync(b, opts);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') throw err;
        return inflateRawSync(b, opts);
      }
    case 'br':
      return brotliDecompressSync(b, opts);
    default:
      return b;
  }
}

/** The decoded bytes, or why they cannot be had. Pure. */
export function decodeBody(header: string, body: Buffer, max = MAX_DECODED_BODY): { bytes: Buffer } | { why: string; tooLarge?: true } {
  const codings = codingsOf(header);
  const unknown = codings.find((c) => !(SUPPORTED_CODINGS as readonly string[]).includes(c));
  if (unknown !== undefined) {
    return { why: `content-encoding ${unknown.slice(0, 32)} is not one the proxy decodes (${SUPPORTED_CODINGS.filter((c) => c !== 'identity').join(', ')})` };
  }
  let out = body;
  try {
    for (let i = codings.length - 1; i >= 0; i--) out = decodeOne(codings[i]!, out, max);
  } catch (err) {
    const tooLarge = (err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE';
    return tooLarge ? { why: `content-encoding ${header.slice(0, 32)} decodes to more than ${max} bytes`, tooLarge: true } : { why: `content-encoding ${header.slice(0, 32)} does not decode` };
  }
  return { bytes: out };
}

function decodeRequest(ex: Exchange, max: number): Verdict {
  // every line of it: two `content-encoding` lines are one list (RFC 9110 §5.3), and delete() removes them all
  const lines = ex.request.headers.getAll('content-encoding');
  if (lines.length === 0) return CONTINUE;
  const header = lines.join(', ');
  if (codingsOf(header).length === 0) {
    ex.request.headers.delete('content-encoding'); // identity only: says nothing
    return CONTINUE;
  }
  if (ex.adapter.id === 'bedrock' && appSigned(ex) && !resignsBedrock(ex)) return CONTINUE;
  const r = decodeBody(header, ex.request.body.bytes(), max);
  if ('why' in r && r.tooLarge) {
    // what a plain body that size gets: the limit holds however the body was sent
    return deny('too_large', 413, 'body_too_large', `aigress: the request body ${r.why}, the proxy's limit (--max-body-bytes)`);
  }
  if ('why' in r) {
    ex.facts.requestEncoding = `undecoded: ${r.why}`.slice(0, 160);
    return CONTINUE;
  }
  ex.request.body.replace(r.bytes);
  ex.request.headers.delete('content-encoding');
  ex.facts.requestEncoding = header.slice(0, 64);
  return CONTINUE;
}

/** First of all steps (describe phase, before describe): the body every later step reads, decoded. */
export function requestEncodingProcessor(maxBodyBytes = MAX_DECODED_BODY): Processor {
  return { name: 'request-encoding', type: 'request-encoding', phase: 'describe', onRequest: (ex) => decodeRequest(ex, maxBodyBytes) };
}
