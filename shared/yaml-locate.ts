import { isMap, isScalar, isSeq, LineCounter, type Document, type Node } from 'yaml';

// From a field path as validators report it (`spec.models.deny[0]`, `spec.regions.azureResources.myres`) to the
// line and column in the YAML source, so a finding points at the text the user wrote. Paths that end in a
// missing field point at the deepest part that exists (a required field that is absent: its parent map).

export interface Position {
  line: number;
  col: number;
}

/** `spec.filters[1].pattern` → ['spec', 'filters', 1, 'pattern']. */
export function splitFieldPath(path: string): Array<string | number> {
  const out: Array<string | number> = [];
  for (const m of path.matchAll(/([^.[\]]+)|\[(\d+)\]/g)) out.push(m[2] !== undefined ? Number(m[2]) : m[1]!);
  return out;
}

/** 1-based line and column of the field at `path` in `doc`, or of its deepest existing ancestor. */
export function locate(doc: Document, counter: LineCounter, path: string): Position | undefined {
  let node: unknown = doc.contents;
  let at: number | undefined = (node as Node | null)?.range?.[0];
  for (const seg of splitFieldPath(path)) {
    if (isMap(node) && typeof seg === 'string') {
      const pair = node.items.find((p) => (isScalar(p.key) ? String(p.key.value) : String(p.key)) === seg);
      if (!pair) break;
      // A map entry is reported at its key: that is where the user wrote the field's name.
      at = isScalar(pair.key) ? pair.key.range?.[0] : at;
      node = pair.value;
    } else if (isSeq(node) && typeof seg === 'number') {
      const item = node.items[seg] as Node | undefined;
      if (!item) break;
      at = item.range?.[0];
      node = item;
    } else break;
  }
  return at === undefined ? undefined : counter.linePos(at);
}
