// Small, total helpers for reading requests: none of them throws on hostile input.
import { isObj } from '../json.js';

export type JsonObject = Readonly<Record<string, unknown>>;

/** The shared plain-object check, typed read-only: adapters only read the bodies they parse. */
export const isObject: (v: unknown) => v is JsonObject = isObj;

export interface SplitPath {
  /** Path without query, repeated slashes collapsed (`//v1//x` and `/v1/x` name the same resource upstream). */
  pathname: string;
  query: URLSearchParams;
}

export function splitPath(path: string): SplitPath {
  const q = path.indexOf('?');
  const raw = q === -1 ? path : path.slice(0, q);
  return { pathname: raw.replace(/\/{2,}/g, '/'), query: new URLSearchParams(q === -1 ? '' : path.slice(q + 1)) };
}

/** Percent-decodes one path segment; undefined when the encoding is broken. */
export function decodeSegment(s: string): string | undefined {
  try {
    return decodeURIComponent(s);
  } catch {
    return undefined;
  }
}

const OPEN_BRACE = 0x7b;

/** The body as a JSON object, or undefined when it is not one (empty, not JSON, an array, compressed…). */
export function parseJsonObject(body: Buffer): JsonObject | undefined {
  let i = 0;
  while (i < body.length && (body[i] === 0x20 || body[i] === 0x0a || body[i] === 0x0d || body[i] === 0x09)) i++;
  if (body[i] !== OPEN_BRACE) return undefined;
  try {
    const v: unknown = JSON.parse(body.toString('utf8'));
    return isObject(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

/** The request body as a JSON object: the caller's shared view when it has one, else parsed here. */
export function bodyJson(req: { readonly body: Buffer; readonly json?: () => JsonObject | undefined }): JsonObject | undefined {
  return req.json ? req.json() : parseJsonObject(req.body);
}

/** A model name from a body field: a non-empty string, length-capped so a hostile value cannot bloat logs. */
export function modelField(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' && v.length <= 256 ? v : undefined;
}
