import fastJsonPatch from 'fast-json-patch';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asCreatedBy, docs, loadCases, podsOf, runManifests, type GoldenCase } from '../inject/support.js';
import { call, decodePatch, review, startWebhook, testPki, type AdmissionResponseBody, type Running, type TestPki } from './support.js';

// The golden corpus again, this time the way the API server meets it: every pod (or pod template made a Pod) is
// sent as an AdmissionReview over verified TLS, the returned JSONPatch is applied with an independent RFC 6902
// implementation (fast-json-patch, validating every operation), and the result must equal the golden output.
// Template pods carry the owner references their controller would set, from which the webhook derives the
// workload that `aigress inject` takes from the enclosing object: both must name the same one.

const { applyPatch, deepClone } = fastJsonPatch;
const cases = loadCases();
let pki: TestPki;
const servers = new Map<string, Running>();

async function serverFor(c: GoldenCase): Promise<Running> {
  const key = JSON.stringify(c.config);
  let s = servers.get(key);
  if (!s) {
    s = await startWebhook({ injection: c.config, pki });
    servers.set(key, s);
  }
  return s;
}

beforeAll(async () => {
  pki = await testPki();
});
afterAll(async () => {
  await Promise.all([...servers.values()].map((s) => s.close()));
});

describe('webhook over HTTPS against the golden corpus', () => {
  it.each(cases.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const s = await serverFor(c);
    const cli = runManifests(c.input, c);
    const inputs = podsOf(docs(c.input));
    const expected = cli.ok ? podsOf(docs(cli.output)) : [];
    const warnings: string[] = [];
    let denials = 0;
    for (const [i, found] of inputs.entries()) {
      const uid = `${c.name}-${i}`;
      const pod = asCreatedBy(found.pod, found.owner);
      const body = review(pod, { uid, namespace: c.namespace ?? found.namespace ?? 'default' });
      const res = await call(s, 'POST', '/mutate', JSON.stringify(body));
      expect(res.status).toBe(200);
      const answer = res.json() as AdmissionResponseBody;
      expect(answer.apiVersion).toBe('admission.k8s.io/v1');
      expect(answer.kind).toBe('AdmissionReview');
      expect(answer.response.uid).toBe(uid);
      if (!answer.response.allowed) {
        // The CLI refuses the same input with the same message (its field paths carry the template's prefix).
        denials++;
        expect(cli.ok).toBe(false);
        if (!cli.ok) expect(cli.error).toContain(answer.response.status!.message.replace(/^invalid pod: /, ''));
        continue;
      }
      warnings.push(...(answer.response.warnings ?? []));
      const ops = decodePatch(answer);
      if (ops.length > 0) expect(answer.response.patchType).toBe('JSONPatch');
      else expect(answer.response.patchType).toBeUndefined();
      const patched = applyPatch(deepClone(pod), ops as never, true, false).newDocument;
      expect(patched).toEqual(asCreatedBy(expected[i]!.pod, found.owner));
    }
    if (cli.ok) {
      expect(denials).toBe(0);
      const cliWarnings = cli.notes.filter((n) => n.includes(': warning: ')).map((n) => n.slice(n.indexOf(': warning: ') + 11));
      expect(warnings).toEqual(cliWarnings);
    } else {
      expect(denials).toBe(1);
    }
  });

  it('gives a dryRun request the same mutation', async () => {
    const c = cases.find((x) => x.name.startsWith('03-'))!;
    const s = await serverFor(c);
    const pod = podsOf(docs(c.input))[0]!.pod;
    const plain = (await call(s, 'POST', '/mutate', JSON.stringify(review(pod)))).json() as AdmissionResponseBody;
    const dry = (await call(s, 'POST', '/mutate', JSON.stringify(review(pod, { dryRun: true })))).json() as AdmissionResponseBody;
    expect(decodePatch(plain).length).toBeGreaterThan(0);
    expect(dry.response.patch).toBe(plain.response.patch);
  });
});
