import fastJsonPatch from 'fast-json-patch';
import { describe, expect, it } from 'vitest';
import { PatchBuilder, escapePointerSegment, pointer } from '../../../webhook/inject/patch.js';

const { applyPatch, deepClone } = fastJsonPatch;

/** Applies the builder's ops with an independent RFC 6902 implementation that validates every operation. */
const applied = (doc: object, b: PatchBuilder): unknown => applyPatch(deepClone(doc), b.ops as never, true, false).newDocument;

describe('JSON pointer escaping', () => {
  it('escapes ~ before / so the two never collide', () => {
    expect(escapePointerSegment('aigress.io/status')).toBe('aigress.io~1status');
    expect(escapePointerSegment('a~b/c')).toBe('a~0b~1c');
    expect(pointer(['metadata', 'annotations', 'x/y~z', 0])).toBe('/metadata/annotations/x~1y~0z/0');
  });
});

describe('PatchBuilder', () => {
  it('creates an absent map whole, then adds into it once it exists', () => {
    const pod = { metadata: { name: 'p' } };
    const b = new PatchBuilder(pod);
    b.set(['metadata', 'annotations', 'aigress.io/status'], '{}');
    b.set(['metadata', 'annotations', 'other'], 'x');
    expect(b.ops).toEqual([
      { op: 'add', path: '/metadata/annotations', value: { 'aigress.io/status': '{}' } },
      { op: 'add', path: '/metadata/annotations/other', value: 'x' },
    ]);
    expect(applied(pod, b)).toEqual(b.doc);
    expect(pod).toEqual({ metadata: { name: 'p' } }); // the input is never touched
  });

  it('creates several missing levels as one nested object', () => {
    const b = new PatchBuilder({});
    b.set(['metadata', 'annotations', 'k'], 'v');
    expect(b.ops).toEqual([{ op: 'add', path: '/metadata', value: { annotations: { k: 'v' } } }]);
  });

  it('treats a null member as absent (an add over it replaces it)', () => {
    const doc = { spec: { initContainers: null } };
    const b = new PatchBuilder(doc);
    b.insert(['spec', 'initContainers'], 0, { name: 'a' });
    expect(b.ops).toEqual([{ op: 'add', path: '/spec/initContainers', value: [{ name: 'a' }] }]);
    expect(applied(doc, b)).toEqual({ spec: { initContainers: [{ name: 'a' }] } });
  });

  it('inserts at valid positions and appends with "-", never past the end', () => {
    const doc = { l: ['x', 'y'] };
    const b = new PatchBuilder(doc);
    b.insert(['l'], 0, 'a');
    b.insert(['l'], 3, 'z'); // == length after the first insert: allowed
    b.append(['l'], ['e1', 'e2']);
    expect(b.ops.map((o) => o.path)).toEqual(['/l/0', '/l/3', '/l/-', '/l/-']);
    expect(b.doc).toEqual({ l: ['a', 'x', 'y', 'z', 'e1', 'e2'] });
    expect(applied(doc, b)).toEqual(b.doc);
    expect(() => b.insert(['l'], 7, 'far')).toThrow(/outside \/l \(length 6\)/);
    expect(() => new PatchBuilder({}).insert(['l'], 1, 'x')).toThrow(/absent list/);
  });

  it('appends to an absent list with one add of the whole list', () => {
    const b = new PatchBuilder({ spec: { containers: [{ name: 'app' }] } });
    b.append(['spec', 'containers', 0, 'env'], [{ name: 'A' }, { name: 'B' }]);
    b.append(['spec', 'containers', 0, 'env'], []);
    expect(b.ops).toEqual([{ op: 'add', path: '/spec/containers/0/env', value: [{ name: 'A' }, { name: 'B' }] }]);
  });

  it('replaces only what exists', () => {
    const b = new PatchBuilder({ env: [{ name: 'J', value: 'a' }] });
    b.replace(['env', 0, 'value'], 'b');
    expect(b.ops).toEqual([{ op: 'replace', path: '/env/0/value', value: 'b' }]);
    expect(() => b.replace(['env', 1, 'value'], 'c')).toThrow(/absent/);
  });

  it('records copies: later changes to the working document do not alter earlier operations', () => {
    const b = new PatchBuilder({});
    b.set(['m'], { list: [] });
    b.append(['m', 'list'], [1]);
    expect(b.ops[0]!.value).toEqual({ list: [] });
  });

  it('is checked by fast-json-patch exactly where the API server would fail', () => {
    // The independent validator the corpus tests rely on does reject an index past the end.
    expect(() => applyPatch({ l: [] }, [{ op: 'add', path: '/l/1', value: 1 }], true)).toThrow();
    expect(() => applyPatch({}, [{ op: 'add', path: '/a/b', value: 1 }], true)).toThrow();
  });
});
