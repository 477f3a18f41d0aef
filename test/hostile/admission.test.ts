import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_JSON_DEPTH } from '../../webhook/admission.js';
import { jsonDepthOver } from '../../shared/json.js';
import { call, startWebhook, type Running } from '../unit/webhook/support.js';

// AdmissionReviews built to break the webhook: every one gets a 4xx with a message, never a 500 (which makes
// the API server apply failurePolicy to every pod creation while it lasts).

let s: Running;
beforeAll(async () => {
  s = await startWebhook();
});
afterAll(() => s.close());

const reviewWith = (spec: string): string =>
  JSON.stringify({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: 'u-1',
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      operation: 'CREATE',
      namespace: 'team-a',
      object: { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec: 'SPEC' },
    },
  }).replace('"SPEC"', spec);

describe('deeply nested JSON', () => {
  it.each([100_000, 5_000, MAX_JSON_DEPTH + 1])('a container nested %d levels deep → 400 naming the limit', async (depth) => {
    const deep = '['.repeat(depth) + ']'.repeat(depth);
    const res = await call(s, 'POST', '/mutate', reviewWith(`{"containers":[{"name":"a","image":"i","args":${deep}}]}`));
    expect(res.status).toBe(400);
    expect((res.json() as { message: string }).message).toMatch(new RegExp(`nested deeper than ${MAX_JSON_DEPTH}`));
  });

  it('a real pod (well under the limit) is still admitted', async () => {
    const res = await call(s, 'POST', '/mutate', reviewWith('{"containers":[{"name":"a","image":"i","env":[{"name":"X","valueFrom":{"fieldRef":{"fieldPath":"metadata.name"}}}]}]}'));
    expect(res.status).toBe(200);
  });

  it('brackets inside strings do not count', () => {
    expect(jsonDepthOver(JSON.stringify({ a: '['.repeat(1_000) }), 5)).toBe(false);
    expect(jsonDepthOver(JSON.stringify({ a: '\\"[[[[[[' }), 2)).toBe(false);
    expect(jsonDepthOver('[[[', 2)).toBe(true);
  });
});
