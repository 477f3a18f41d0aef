/** Sets (or, with `undefined`, deletes) the value at `path` (`spec.filters[0].action`) in a parsed JSON document. */
export function setPath(doc: unknown, path: string, value: unknown): void {
  const keys = path.match(/[^.[\]]+/g) ?? [];
  let cur = doc as Record<string, unknown>;
  for (const k of keys.slice(0, -1)) {
    const next = cur[k];
    if (typeof next !== 'object' || next === null) throw new Error(`setPath: ${path}: ${k} is not an object`);
    cur = next as Record<string, unknown>;
  }
  const last = keys[keys.length - 1]!;
  if (value === undefined) delete cur[last];
  else cur[last] = value;
}

/** A deep copy of `doc` with each `[path, value]` applied. */
export function withPaths<T>(doc: T, ...changes: Array<[string, unknown]>): T {
  const copy = structuredClone(doc);
  for (const [p, v] of changes) setPath(copy, p, v);
  return copy;
}
