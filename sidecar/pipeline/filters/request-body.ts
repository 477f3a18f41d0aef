import { BodyDocument } from '../body.js';
import { codingsOf, decodeBody, MAX_DECODED_BODY, SUPPORTED_CODINGS } from '../request-encoding.js';
import type { Exchange } from '../types.js';

export { MAX_DECODED_BODY, SUPPORTED_CODINGS };

// The request body as filters read it. In the full pipeline the request-encoding step (../request-encoding.ts)
// has already decoded a compressed body and removed `content-encoding`, so this is the body itself. Filters
// still check, so that one built into another pipeline (a test's, a later step that re-encodes) never reads
// compressed bytes as text: it decodes them once per exchange into a view all filters share, and a filter that
// rewrites commits the new body uncompressed with `content-encoding` removed. What cannot be decoded follows the
// filter's failure mode.

/** The body to read, whether it is a decoded view of the wire body, or why it cannot be read. */
export type ReadableBody = { readonly doc: BodyDocument; readonly decoded: boolean } | { readonly why: string };

const DECODED = {};
interface Cache {
  /** The wire bytes the view was decoded from: a filter that replaced them invalidates it. */
  from?: Buffer;
  result?: ReadableBody;
}

export function readableBody(ex: Exchange): ReadableBody {
  const lines = ex.request.headers.getAll('content-encoding');
  const header = lines.join(', ');
  if (codingsOf(header).length === 0) return { doc: ex.request.body, decoded: false };
  const raw = ex.request.body.bytes();
  const cache = ex.slot<Cache>(DECODED, () => ({}));
  if (cache.from !== raw) {
    // decoded (or found undecodable) once per wire body, however many filters ask
    const r = decodeBody(header, raw);
    cache.from = raw;
    cache.result = 'why' in r ? r : { doc: new BodyDocument(r.bytes), decoded: true };
  }
  return cache.result!;
}

/** After a filter edited a decoded view: the upstream gets it, uncompressed. */
export function commitDecoded(ex: Exchange, doc: BodyDocument): void {
  ex.request.body.replace(doc.bytes());
  ex.request.headers.delete('content-encoding');
  const cache = ex.slot<Cache>(DECODED, () => ({}));
  cache.from = undefined;
  cache.result = undefined;
}
