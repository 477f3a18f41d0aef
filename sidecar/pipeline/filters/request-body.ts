import { brotliDecompressSync, gunzipSync, inflateRawSync, inflateSync } from 'node:zlib';
import { BodyDocument } from '../body.js';
import type { Exchange } from '../types.js';

// The request body as filters read it. A body the app compressed (`content-encoding: gzip`, `deflate`, `br`,
// or a list of them, applied in order) is decoded once per exchange into a view all filters share; the upstream
// still gets the app's bytes unless a filter rewrites the body, and then it gets the new body uncompressed with
// `content-encoding` removed (every provider accepts an uncompressed body, and a re-compressed one would need the
// encoder's settings the proxy does not know). A coding the proxy cannot decode, a body that does not decode, or
// one that decodes to more than MAX_DECODED_BODY bytes cannot be inspected: the filter's failure mode decides.

/** Largest decoded request body a filter inspects (a small compressed body may decode to a huge one). */
export const MAX_DECODED_BODY = 32 * 1024 * 1024;

export const SUPPORTED_CODINGS = ['gzip', 'x-gzip', 'deflate', 'br', 'identity'] as const;

/** The body to read, whether it is a decoded view of the wire body, or why it cannot be read. */
export type ReadableBody = { readonly doc: BodyDocument; readonly decoded: boolean } | { readonly why: string };

const DECODED = {};
interface Cache {
  /** The wire bytes the view was decoded from: a filter that replaced them invalidates it. */
  from?: Buffer;
  doc?: BodyDocument;
}

function decode(coding: string, b: Buffer): Buffer {
  const opts = { maxOutputLength: MAX_DECODED_BODY };
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

export function readableBody(ex: Exchange): ReadableBody {
  const header = ex.request.headers.get('content-encoding');
  const codings = (header ?? '').split(',').map((c) => c.trim().toLowerCase()).filter((c) => c !== '' && c !== 'identity');
  if (codings.length === 0) return { doc: ex.request.body, decoded: false };
  const unknown = codings.find((c) => !(SUPPORTED_CODINGS as readonly string[]).includes(c));
  if (unknown !== undefined) return { why: `content-encoding ${unknown.slice(0, 32)} is not one the proxy decodes (${SUPPORTED_CODINGS.filter((c) => c !== 'identity').join(', ')})` };
  const raw = ex.request.body.bytes();
  const cache = ex.slot<Cache>(DECODED, () => ({}));
  if (cache.from !== raw || !cache.doc) {
    let out = raw;
    try {
      for (let i = codings.length - 1; i >= 0; i--) out = decode(codings[i]!, out);
    } catch (err) {
      const tooLarge = (err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE';
      return { why: tooLarge ? `content-encoding ${header!.slice(0, 32)} decodes to more than ${MAX_DECODED_BODY} bytes` : `content-encoding ${header!.slice(0, 32)} does not decode` };
    }
    cache.from = raw;
    cache.doc = new BodyDocument(out);
  }
  return { doc: cache.doc, decoded: true };
}

/** After a filter edited a decoded view: the upstream gets it, uncompressed. */
export function commitDecoded(ex: Exchange, doc: BodyDocument): void {
  ex.request.body.replace(doc.bytes());
  ex.request.headers.delete('content-encoding');
  ex.slot<Cache>(DECODED, () => ({})).doc = undefined;
}
