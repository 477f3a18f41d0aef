import { describe, expect, it } from 'vitest';
import { ANNOTATION_STATUS } from '../../../shared/constants.js';
import { apiServerChecks, docs, golden, loadCases, podsOf, readGolden, runManifests, validateSchema } from './support.js';

const cases = loadCases();

describe('golden corpus', () => {
  it('has at least 25 cases, each described', () => {
    expect(cases.length).toBeGreaterThanOrEqual(25);
    for (const c of cases) expect(c.description.length, c.name).toBeGreaterThan(20);
  });

  describe.each(cases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const first = runManifests(c.input, c);

    it('matches the golden output', () => {
      if (!first.ok) {
        expect(golden(c, 'output.yaml', undefined) ?? '').toBe('');
        expect(first.error).toBe(golden(c, 'error.txt', first.error));
        return;
      }
      expect(golden(c, 'error.txt', undefined) ?? '').toBe('');
      expect(first.output).toBe(golden(c, 'output.yaml', first.output));
      const notes = first.notes.map((n) => `${n}\n`).join('');
      expect(notes).toBe(golden(c, 'notes.txt', notes));
    });

    it('is idempotent: injecting the output again changes nothing', () => {
      if (!first.ok) {
        // An error case is refused the same way every time, with the golden message.
        const again = runManifests(c.input, c);
        // Read only: under UPDATE_GOLDEN=1 `golden(…, undefined)` would empty the error golden just written.
        expect(again).toEqual({ ok: false, error: readGolden(c, 'error.txt') });
        return;
      }
      const second = runManifests(first.output, c);
      expect(second.ok && second.output).toBe(first.output);
      // Every pod the first pass injected is now reported as already injected, with no new warnings.
      if (second.ok) for (const n of second.notes) expect(n).toMatch(/not injected: |warning: unknown annotation/);
    });

    it('produces objects valid against the Kubernetes OpenAPI schemas and API-server rules', () => {
      if (!first.ok) {
        // Nothing is produced for a refused input: no output golden, and the error names what is wrong.
        expect(golden(c, 'output.yaml', undefined) ?? '').toBe('');
        expect(first.error.length).toBeGreaterThan(10);
        return;
      }
      const objects = docs(first.output);
      for (const o of objects) validateSchema(o);
      for (const { pod, label, claimVolumes } of podsOf(objects)) {
        validateSchema(pod);
        expect(apiServerChecks(pod, claimVolumes), label).toEqual([]);
        const status = (pod.metadata as { annotations?: Record<string, string> }).annotations?.[ANNOTATION_STATUS];
        if (status) expect(Object.keys(JSON.parse(status) as object)).toEqual(['version', 'initContainers', 'containers', 'volumes']);
      }
    });
  });
});
