import { randomBytes } from 'node:crypto';
import type { HeaderList } from '../pipeline/header-list.js';

// W3C Trace Context (https://www.w3.org/TR/trace-context/): the `traceparent` an app sends makes the proxy's
// span its child; the provider call carries the proxy span's context. Pure parsing and formatting, plus ids.

export interface TraceContext {
  /** 32 lower-case hex digits, not all zero. */
  readonly traceId: string;
  /** 16 lower-case hex digits, not all zero. */
  readonly spanId: string;
  /** The sampled flag and the other trace flags, as the 2-hex-digit byte. */
  readonly flags: string;
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
/** tracestate: at most 32 list members; implementations may drop it past 512 characters. */
const MAX_TRACESTATE = 512;

/**
 * The parent an app's `traceparent` names, or undefined when it is absent or invalid (then the proxy starts a
 * trace). Version ff is invalid; a future version is read by its first four fields, as the spec asks.
 */
export function parseTraceparent(value: string | undefined): TraceContext | undefined {
  if (value === undefined) return undefined;
  const m = TRACEPARENT.exec(value.trim());
  if (!m) return undefined;
  const [, version, traceId, spanId, flags, rest] = m;
  if (version === 'ff') return undefined;
  if (version === '00' && rest !== undefined) return undefined;
  if (/^0+$/.test(traceId!) || /^0+$/.test(spanId!)) return undefined;
  return { traceId: traceId!, spanId: spanId!, flags: flags! };
}

export function formatTraceparent(c: TraceContext): string {
  return `00-${c.traceId}-${c.spanId}-${c.flags}`;
}

/** A valid tracestate to forward with ours, or undefined (dropped: too long, or not a list of key=value). */
export function cleanTracestate(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (v === '' || v.length > MAX_TRACESTATE) return undefined;
  const members = v.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (members.length > 32) return undefined;
  // key = lcalpha 0*255( lcalpha / DIGIT / "_" / "-"/ "*" / "/" ) [ "@" ... ]; value = printable ASCII but , and =
  const ok = members.every((m) => /^[a-z0-9][a-z0-9_\-*/@]{0,255}=[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]$/.test(m));
  return ok ? members.join(',') : undefined;
}

export const newTraceId = (): string => nonZeroHex(16);
export const newSpanId = (): string => nonZeroHex(8);

function nonZeroHex(bytes: number): string {
  for (;;) {
    const h = randomBytes(bytes).toString('hex');
    if (!/^0+$/.test(h)) return h;
  }
}

/**
 * True when the app signed the request itself with AWS SigV4 and its signature covers `traceparent`: changing
 * the header would make the provider reject the request (403 SignatureDoesNotMatch), so the proxy leaves the
 * app's trace headers as they are. A signature the proxy makes (managed credentials, `sign` phase) runs after
 * this and covers what the proxy set.
 */
export function signatureCovers(headers: HeaderList, name: string, path = ''): boolean {
  const auth = headers.get('authorization');
  if (auth !== undefined && /^AWS4-HMAC-SHA256\s/i.test(auth)) {
    const m = /SignedHeaders=([^,\s]+)/i.exec(auth);
    if (m && m[1]!.toLowerCase().split(';').includes(name)) return true;
  }
  // A presigned URL names its signed headers in the query string.
  const q = path.indexOf('?');
  if (q >= 0) {
    const signed = new URLSearchParams(path.slice(q + 1)).get('X-Amz-SignedHeaders');
    if (signed && signed.toLowerCase().split(';').includes(name)) return true;
  }
  return false;
}
