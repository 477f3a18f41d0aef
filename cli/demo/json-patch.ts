// A minimal RFC 6902 applier, as the API server applies an admission webhook's patch: the demo applies the
// webhook's answer itself (the injection code only builds patches; fast-json-patch is a dev dependency). It
// fails on what the API server would reject (a missing parent, an index past the end, a failed `test`), so the
// demo cannot show a patch the cluster would refuse. The input document is never changed.

export interface PatchOp {
  op: 'add' | 'remove' | 'replace' | 'move' | 'copy' | 'test';
  path: string;
  value?: unknown;
  from?: string;
}

/** A patch that does not apply; the message names the operation and the pointer. */
export class JsonPatchError extends Error {}

type Container = Record<string, unknown> | unknown[];
const OPS = ['add', 'remove', 'replace', 'move', 'copy', 'test'] as const;
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** `/a/b~1c/0` → ['a', 'b/c', '0'] (RFC 6901). */
export function parsePointer(pointer: string): string[] {
  if (pointer === '') return [];
  if (!pointer.startsWith('/')) throw new JsonPatchError(`"${pointer}" is not a JSON pointer (must start with /)`);
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/** Checks that a decoded patch is a list of operations with the fields their kind needs. */
export function checkPatch(doc: unknown): PatchOp[] {
  if (!Array.isArray(doc)) throw new JsonPatchError('a JSON patch must be a list of operations');
  return doc.map((op: unknown, i) => {
    if (!isObj(op) || typeof op.op !== 'string' || !(OPS as readonly string[]).includes(op.op)) {
      throw new JsonPatchError(`operation ${i}: op must be one of ${OPS.join(', ')}`);
    }
    if (typeof op.path !== 'string') throw new JsonPatchError(`operation ${i}: path must be a string`);
    if ((op.op === 'move' || op.op === 'copy') && typeof op.from !== 'string') throw new JsonPatchError(`operation ${i} (${op.op}): from must be a string`);
    if ((op.op === 'add' || op.op === 'replace' || op.op === 'test') && !('value' in op)) throw new JsonPatchError(`operation ${i} (${op.op}): value is required`);
    return op as unknown as PatchOp;
  });
}

function index(list: unknown[], seg: string, forAdd: boolean, where: string): number {
  if (forAdd && seg === '-') return list.length;
  if (!/^(0|[1-9]\d*)$/.test(seg)) throw new JsonPatchError(`${where}: "${seg}" is not a list index`);
  const i = Number(seg);
  if (i > list.length || (!forAdd && i === list.length)) throw new JsonPatchError(`${where}: index ${i} is past the end (length ${list.length})`);
  return i;
}

/** The container holding the pointer's last segment, and that segment. */
function parentOf(doc: unknown, pointer: string, where: string): { parent: Container; key: string } {
  const segs = parsePointer(pointer);
  if (segs.length === 0) throw new JsonPatchError(`${where}: the whole document cannot be the target`);
  let cur: unknown = doc;
  for (const seg of segs.slice(0, -1)) {
    if (Array.isArray(cur)) cur = cur[index(cur, seg, false, where)];
    else if (isObj(cur) && Object.hasOwn(cur, seg)) cur = cur[seg];
    else throw new JsonPatchError(`${where}: the parent does not exist`);
  }
  if (!Array.isArray(cur) && !isObj(cur)) throw new JsonPatchError(`${where}: the parent is not an object or a list`);
  return { parent: cur, key: segs[segs.length - 1]! };
}

function get(doc: unknown, pointer: string, where: string): unknown {
  let cur: unknown = doc;
  for (const seg of parsePointer(pointer)) {
    if (Array.isArray(cur)) cur = cur[index(cur, seg, false, where)];
    else if (isObj(cur) && Object.hasOwn(cur, seg)) cur = cur[seg];
    else throw new JsonPatchError(`${where}: the target does not exist`);
  }
  return cur;
}

function add(doc: unknown, pointer: string, value: unknown, where: string): void {
  const { parent, key } = parentOf(doc, pointer, where);
  if (Array.isArray(parent)) parent.splice(index(parent, key, true, where), 0, value);
  else parent[key] = value;
}

function remove(doc: unknown, pointer: string, where: string): unknown {
  const { parent, key } = parentOf(doc, pointer, where);
  if (Array.isArray(parent)) return parent.splice(index(parent, key, false, where), 1)[0];
  if (!Object.hasOwn(parent, key)) throw new JsonPatchError(`${where}: the target does not exist`);
  const old = parent[key];
  delete parent[key];
  return old;
}

function equal(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((v, i) => equal(v, b[i]));
  if (isObj(a) && isObj(b)) {
    const ka = Object.keys(a);
    return ka.length === Object.keys(b).length && ka.every((k) => Object.hasOwn(b, k) && equal(a[k], b[k]));
  }
  return false;
}

/** Applies `ops` in order to a copy of `doc`; the whole patch fails if one operation does (as the API server does). */
export function applyPatch<T>(doc: T, ops: readonly PatchOp[]): T {
  // The document sits under a wrapper key, so a patch of the whole document ('' path) is an ordinary member edit.
  const root = { doc: structuredClone(doc) as unknown };
  const at = (p: string): string => `/doc${p}`;
  ops.forEach((op, i) => {
    const where = `operation ${i} (${op.op} ${op.path})`;
    for (const p of op.from === undefined ? [op.path] : [op.path, op.from]) {
      if (p !== '' && !p.startsWith('/')) throw new JsonPatchError(`${where}: "${p}" is not a JSON pointer (must start with /)`);
    }
    switch (op.op) {
      case 'add':
        add(root, at(op.path), structuredClone(op.value), where);
        break;
      case 'remove':
        remove(root, at(op.path), where);
        break;
      case 'replace':
        get(root, at(op.path), where); // the target must exist
        if (op.path === '') root.doc = structuredClone(op.value);
        else {
          remove(root, at(op.path), where);
          add(root, at(op.path), structuredClone(op.value), where);
        }
        break;
      case 'move': {
        if (op.path.startsWith(`${op.from!}/`)) throw new JsonPatchError(`${where}: cannot move ${op.from!} into itself`);
        add(root, at(op.path), remove(root, at(op.from!), where), where);
        break;
      }
      case 'copy':
        add(root, at(op.path), structuredClone(get(root, at(op.from!), where)), where);
        break;
      case 'test':
        if (!equal(get(root, at(op.path), where), op.value)) throw new JsonPatchError(`${where}: test failed`);
        break;
    }
  });
  return root.doc as T;
}
