import type { PatchOperation } from './types.js';
import { isObj, type Obj } from '../../shared/json.js';

// Builds an RFC 6902 patch the API server applies exactly as intended, while applying each operation to a working
// copy so the next one is computed against the document as it will then be. Rules it enforces:
// keys are escaped (`aigress.io/status` → `aigress.io~1status`); an absent (or null) map or list is created whole
// instead of added into; array positions are never past the end (appends use `-`).

export type Segment = string | number;


export function escapePointerSegment(s: Segment): string {
  return String(s).replace(/~/g, '~0').replace(/\//g, '~1');
}

export function pointer(path: readonly Segment[]): string {
  return path.map((s) => `/${escapePointerSegment(s)}`).join('');
}

export class PatchBuilder {
  readonly ops: PatchOperation[] = [];
  /** The document as it is after the operations so far; a deep copy, the caller's object is never touched. */
  readonly doc: Obj;

  constructor(original: object) {
    this.doc = structuredClone(original) as Obj;
  }

  get(path: readonly Segment[]): unknown {
    let cur: unknown = this.doc;
    for (const s of path) {
      if (Array.isArray(cur) && typeof s === 'number') cur = cur[s];
      else if (isObj(cur) && typeof s === 'string') cur = cur[s];
      else return undefined;
    }
    return cur;
  }

  /**
   * Sets a map member, creating absent parent maps: the first missing level is added as one nested object, since
   * RFC 6902 cannot add into a map that does not exist.
   */
  set(path: readonly Segment[], value: unknown): void {
    let depth = 0;
    let cur: unknown = this.doc;
    while (depth < path.length - 1) {
      const s = path[depth]!;
      const next = Array.isArray(cur) && typeof s === 'number' ? cur[s] : isObj(cur) ? cur[s] : undefined;
      if (!isObj(next) && !Array.isArray(next)) break;
      cur = next;
      depth++;
    }
    let wrapped: unknown = value;
    for (let i = path.length - 1; i > depth; i--) {
      const s = path[i]!;
      if (typeof s === 'number') throw new Error(`cannot create list position ${pointer(path.slice(0, i + 1))}`);
      wrapped = { [s]: wrapped };
    }
    const at = path.slice(0, depth + 1);
    this.record('add', at, wrapped);
  }

  /** Inserts into a list at `index` (0 ≤ index ≤ length); an absent list is created holding just this item. */
  insert(listPath: readonly Segment[], index: number, value: unknown): void {
    const list = this.get(listPath);
    if (!Array.isArray(list)) {
      if (index !== 0) throw new Error(`cannot insert at ${index} into the absent list ${pointer(listPath)}`);
      this.set(listPath, [value]);
      return;
    }
    if (index < 0 || index > list.length) throw new Error(`index ${index} is outside ${pointer(listPath)} (length ${list.length})`);
    this.record('add', [...listPath, index], value);
  }

  /** Appends items to a list; an absent list is created with all of them in one operation. */
  append(listPath: readonly Segment[], values: readonly unknown[]): void {
    if (values.length === 0) return;
    const list = this.get(listPath);
    if (!Array.isArray(list)) {
      this.set(listPath, [...values]);
      return;
    }
    for (const v of values) this.record('add', [...listPath, '-'], v);
  }

  /** Replaces a value that exists (RFC 6902 `replace` fails on a missing target, as it should here). */
  replace(path: readonly Segment[], value: unknown): void {
    if (this.get(path) === undefined) throw new Error(`cannot replace the absent ${pointer(path)}`);
    this.record('replace', path, value);
  }

  private record(op: PatchOperation['op'], path: readonly Segment[], value: unknown): void {
    // The operation carries its own copy, so later edits to the working document cannot leak into it.
    this.ops.push({ op, path: pointer(path), value: structuredClone(value) });
    const parentPath = path.slice(0, -1);
    const last = path[path.length - 1]!;
    const parent = parentPath.length === 0 ? this.doc : this.get(parentPath);
    const copy = structuredClone(value);
    if (Array.isArray(parent)) {
      if (last !== '-' && (typeof last !== 'number' || last < 0 || last > parent.length - (op === 'replace' ? 1 : 0))) {
        throw new Error(`${pointer(path)} is past the end of its list`);
      }
      if (last === '-') parent.push(copy);
      else if (op === 'add') parent.splice(last as number, 0, copy);
      else parent[last as number] = copy;
    } else if (isObj(parent)) {
      parent[last as string] = copy;
    } else {
      throw new Error(`no parent for ${pointer(path)}`);
    }
  }
}
