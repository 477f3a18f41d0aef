/** A parsed JSON or YAML object whose fields have not been checked yet. */
export type Obj = Record<string, unknown>;

export const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The deepest nesting of objects and arrays in a JSON text, counted without parsing (so without recursion),
 * stopping as soon as it passes `limit`. Code that walks parsed JSON recursively (patches, validation) must not
 * meet a document nested a hundred thousand levels deep: it would overflow the stack.
 */
export function jsonDepthOver(text: string, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > limit) return true;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return false;
}
