import type { Exchange } from '../types.js';
import { readableBody } from './request-body.js';

// `logText: true` on a pii filter: the request's texts, as the provider got them, go into the request's log line
// (`facts.promptText`), with the filter's kinds replaced by placeholders. Every such filter of the policy redacts
// the same shared copy at the end of the exchange (so the line carries all their redactions), whatever its
// action or the policy's mode: audit mode and `action: log` send the values upstream, never to the log. The
// copy is bounded; it is never sent anywhere else (not in the audit record nor on spans).

/** Characters of prompt text one log line carries at most (the rest is cut, marked by `…`). */
export const MAX_LOGGED_TEXT = 8192;

export interface LoggedSegment {
  readonly role: string;
  /** JSON source (tool-call arguments): placeholders are matched in its escaped form. */
  readonly json: boolean;
  text: string;
}

const LOGGED = {};

/** The request's texts for the log line, read once per exchange from the final upstream body (decoded). */
export function loggedTexts(ex: Exchange): LoggedSegment[] {
  return ex.slot(LOGGED, () => {
    const codec = ex.adapter.codec?.(ex.described);
    const readable = readableBody(ex);
    const json = codec && 'doc' in readable ? readable.doc.json() : undefined;
    if (!codec || !json) return [];
    return codec.request(json).map((s) => ({ role: s.role, json: s.json === true, text: s.text }));
  });
}

/** Writes the (redacted) copy into the log line's facts. */
export function writeLoggedText(ex: Exchange, segs: readonly LoggedSegment[]): void {
  if (segs.length === 0) return;
  let out = segs.map((s) => `${s.role}: ${s.text}`).join('\n');
  if (out.length > MAX_LOGGED_TEXT) out = `${out.slice(0, MAX_LOGGED_TEXT)}…`;
  ex.facts.promptText = out;
}
