import { describe, expect, it } from 'vitest';
import { ANNOTATION_STATUS, INIT_CONTAINER_NAME, PROXY_CONTAINER_NAME } from '../../../shared/constants.js';
import { uninjectManifests } from '../../../cli/uninject/manifests.js';
import { docs, loadCases, runManifests } from './support.js';

// uninject(inject(x)) = x over the golden corpus, object for object; and on inputs that were already injected,
// uninject leaves no trace of aigress and inject puts back exactly what was there.

const cases = loadCases();
const traces = (text: string): string[] => {
  const found: string[] = [];
  for (const name of [ANNOTATION_STATUS, INIT_CONTAINER_NAME, PROXY_CONTAINER_NAME, 'aigress-ca', 'aigress-token', '/var/run/aigress/ca']) {
    if (text.includes(name)) found.push(name);
  }
  return found;
};

describe('uninject: the exact inverse of inject over the golden corpus', () => {
  const injectable = cases.filter((c) => !traces(c.input).includes(ANNOTATION_STATUS));
  it('covers most of the corpus', () => {
    expect(injectable.length).toBeGreaterThanOrEqual(25);
  });

  describe.each(injectable.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const injected = runManifests(c.input, c);
    it('uninject(inject(x)) = x', () => {
      if (!injected.ok) return; // refused inputs have no output to invert
      const back = uninjectManifests(injected.output);
      expect(docs(back.output)).toEqual(docs(c.input));
      expect(traces(back.output)).toEqual(traces(c.input)); // (an input may name the bundle path itself)
      // unchanged documents come back byte for byte; a corpus input with nothing injected comes back whole
      if (injected.output === c.input) expect(back.output).toBe(c.input);
    });
  });

  describe.each(cases.filter((c) => traces(c.input).includes(ANNOTATION_STATUS)).map((c) => [c.name, c] as const))('%s (already injected)', (_name, c) => {
    it('uninject removes every trace, and inject puts back what was there', () => {
      const back = uninjectManifests(c.input);
      expect(back.changed).toBeGreaterThan(0);
      expect(traces(back.output)).toEqual([]);
      const again = runManifests(back.output, c);
      expect(again.ok).toBe(true);
      const first = runManifests(c.input, c);
      if (again.ok && first.ok) expect(docs(again.output)).toEqual(docs(first.output));
    });
  });

  it('takes back the flags appended to an existing JAVA_TOOL_OPTIONS and keeps an app\'s own CA variables', () => {
    const input = `apiVersion: v1
kind: Pod
metadata: { name: j, annotations: { team: a } }
spec:
  containers:
    - name: app
      image: app
      env:
        - { name: JAVA_TOOL_OPTIONS, value: "-Xmx1g" }
        - { name: SSL_CERT_FILE, value: /etc/ssl/mine.pem }
`;
    const injected = runManifests(input, cases[0]!);
    expect(injected.ok && injected.output).toContain('-Xmx1g -Djavax.net.ssl.trustStore=');
    if (injected.ok) expect(docs(uninjectManifests(injected.output).output)).toEqual(docs(input));
  });

  it('leaves manifests without aigress byte for byte', () => {
    const input = '# a comment\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: "1"}\n';
    expect(uninjectManifests(input)).toEqual({ output: input, changed: 0 });
  });
});
