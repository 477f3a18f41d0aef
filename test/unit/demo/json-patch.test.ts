import fastJsonPatch from 'fast-json-patch';
import { describe, expect, it } from 'vitest';
import { applyPatch, checkPatch, JsonPatchError, parsePointer, type PatchOp } from '../../../cli/demo/json-patch.js';
import { samplePod } from '../../../cli/demo/sample.js';
import { defaultConfig } from '../../../webhook/config.js';
import { inject } from '../../../webhook/inject/inject.js';

// The demo's RFC 6902 applier against an independent implementation (fast-json-patch, validating every
// operation) on the patch injection really produces, and on the edge cases the RFC defines.

const reference = (doc: unknown, ops: PatchOp[]): unknown =>
  fastJsonPatch.applyPatch(fastJsonPatch.deepClone(doc), ops as never, true, false).newDocument;

describe('applyPatch', () => {
  it('applies the injection patch of the sample pod exactly as an independent RFC 6902 implementation does', () => {
    const r = inject(samplePod(), { namespace: 'team-a' }, defaultConfig().injection);
    expect(r.patch.length).toBeGreaterThan(5);
    const pod = samplePod();
    const out = applyPatch(pod, r.patch);
    expect(out).toEqual(reference(samplePod(), r.patch));
    expect(out).toEqual(r.pod);
    expect(pod).toEqual(samplePod()); // the input is never touched
  });

  it('follows the RFC for add, remove, replace, move, copy and test', () => {
    const doc = { a: { 'b/c': 1, 'd~e': [1, 2, 3] }, f: 'x' };
    const ops: PatchOp[] = [
      { op: 'add', path: '/a/d~0e/1', value: 9 },
      { op: 'add', path: '/a/d~0e/-', value: 4 },
      { op: 'remove', path: '/a/d~0e/0' },
      { op: 'replace', path: '/a/b~1c', value: { deep: true } },
      { op: 'copy', from: '/a/b~1c', path: '/g' },
      { op: 'move', from: '/f', path: '/h' },
      { op: 'test', path: '/g/deep', value: true },
    ];
    const out = applyPatch(doc, ops);
    expect(out).toEqual({ a: { 'b/c': { deep: true }, 'd~e': [9, 2, 3, 4] }, g: { deep: true }, h: 'x' });
    expect(out).toEqual(reference(doc, ops));
  });

  it('replaces the whole document for the empty path', () => {
    expect(applyPatch({ a: 1 }, [{ op: 'add', path: '', value: { b: 2 } }])).toEqual({ b: 2 });
    expect(applyPatch({ a: 1 }, [{ op: 'replace', path: '', value: [1] }])).toEqual([1]);
  });

  it.each<[string, PatchOp[], RegExp]>([
    ['a missing parent', [{ op: 'add', path: '/spec/initContainers/0', value: {} }], /operation 0 \(add \/spec\/initContainers\/0\): the parent does not exist/],
    ['an index past the end', [{ op: 'add', path: '/l/3', value: 1 }], /index 3 is past the end \(length 1\)/],
    ['a non-numeric index', [{ op: 'add', path: '/l/x', value: 1 }], /"x" is not a list index/],
    ['removing an absent member', [{ op: 'remove', path: '/nope' }], /the target does not exist/],
    ['replacing an absent member', [{ op: 'replace', path: '/nope', value: 1 }], /the target does not exist/],
    ['a failed test', [{ op: 'test', path: '/l/0', value: 2 }], /operation 0 \(test \/l\/0\): test failed/],
    ['a pointer without a leading slash', [{ op: 'add', path: 'l', value: 1 }], /"l" is not a JSON pointer/],
    ['moving a value into itself', [{ op: 'move', from: '/m', path: '/m/x' }], /cannot move \/m into itself/],
  ])('fails on %s, naming the operation, and changes nothing', (_name, ops, message) => {
    const doc = { l: [1], m: {} };
    expect(() => applyPatch(doc, ops)).toThrow(message);
    expect(() => reference(doc, ops)).toThrow(); // the reference refuses it too
    expect(doc).toEqual({ l: [1], m: {} });
  });

  it('applies all or nothing: a failure late in the patch leaves the input as it was', () => {
    const doc = { a: 1 };
    expect(() => applyPatch(doc, [{ op: 'add', path: '/b', value: 2 }, { op: 'remove', path: '/zzz' }])).toThrow(JsonPatchError);
    expect(doc).toEqual({ a: 1 });
  });
});

describe('checkPatch and parsePointer', () => {
  it('accepts well-formed operations and rejects malformed ones with their index', () => {
    expect(checkPatch([{ op: 'add', path: '/a', value: null }])).toHaveLength(1);
    expect(() => checkPatch({})).toThrow('must be a list');
    expect(() => checkPatch([{ op: 'add', path: '/a', value: 1 }, { op: 'frobnicate', path: '/a' }])).toThrow(/operation 1: op must be one of/);
    expect(() => checkPatch([{ op: 'add', path: '/a' }])).toThrow('operation 0 (add): value is required');
    expect(() => checkPatch([{ op: 'copy', path: '/a' }])).toThrow('operation 0 (copy): from must be a string');
    expect(() => checkPatch([{ op: 'remove', path: 3 }])).toThrow('operation 0: path must be a string');
  });

  it('unescapes ~1 before ~0 (RFC 6901)', () => {
    expect(parsePointer('/aigress.io~1status/~01')).toEqual(['aigress.io/status', '~1']);
    expect(parsePointer('')).toEqual([]);
  });
});
