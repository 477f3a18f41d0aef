// The body's JSON view and its nesting limit: refused past MAX_JSON_DEPTH however the brackets are counted (the
// quick count of all brackets, or the walk that skips strings when there are more brackets than the limit).
import { describe, expect, it } from 'vitest';
import { BodyDocument, MAX_JSON_DEPTH } from '../../../sidecar/pipeline/body.js';

const nested = (depth: number): string => `${'{"a":'.repeat(depth - 1)}{}${'}'.repeat(depth - 1)}`;
const doc = (text: string): BodyDocument => new BodyDocument(Buffer.from(text));

describe('BodyDocument JSON nesting limit', () => {
  it('parses an object nested exactly MAX_JSON_DEPTH deep', () => {
    const d = doc(nested(MAX_JSON_DEPTH));
    expect(d.noJson).toBeUndefined();
    expect(d.json()).toHaveProperty('a');
  });

  it('refuses one level more as too_deep', () => {
    const d = doc(nested(MAX_JSON_DEPTH + 1));
    expect(d.json()).toBeUndefined();
    expect(d.noJson).toBe('too_deep');
  });

  it('parses a shallow body with more brackets in all than the limit (many siblings)', () => {
    const siblings = Array.from({ length: 3 * MAX_JSON_DEPTH }, () => ({ role: 'user', content: [] }));
    const d = doc(JSON.stringify({ messages: siblings }));
    expect(d.noJson).toBeUndefined();
    expect((d.json()?.messages as unknown[]).length).toBe(3 * MAX_JSON_DEPTH);
  });

  it('does not count brackets inside strings as depth', () => {
    const d = doc(JSON.stringify({ content: '{['.repeat(2 * MAX_JSON_DEPTH) }));
    expect(d.noJson).toBeUndefined();
    expect(d.json()?.content).toBe('{['.repeat(2 * MAX_JSON_DEPTH));
  });

  it('refuses deep arrays as well as objects, past many shallow siblings', () => {
    const deep = `${'['.repeat(MAX_JSON_DEPTH)}${']'.repeat(MAX_JSON_DEPTH)}`;
    const d = doc(`{"a":[${'{},'.repeat(MAX_JSON_DEPTH)}${deep}]}`);
    expect(d.noJson).toBe('too_deep');
  });
});
