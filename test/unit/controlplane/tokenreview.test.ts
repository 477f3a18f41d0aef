import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kubeClients, kubeConfigFor } from '../../../webhook/kube.js';
import { HttpRefusal } from '../../../webhook/policy/http.js';
import { identityFromReview, NEGATIVE_TTL_MS, SOURCE_LIMIT, TokenReviewer } from '../../../webhook/tokenreview.js';
import { ManualClock } from '../../support/clock.js';
import { FakeApiServer } from '../../support/fake-apiserver.js';

describe('identityFromReview (pure)', () => {
  const review = (status: object) => ({ apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: {}, status });
  it('takes namespace, ServiceAccount and pod from an authenticated review for our audience', () => {
    expect(
      identityFromReview(review({
        authenticated: true,
        audiences: ['aigress'],
        user: { username: 'system:serviceaccount:team-a:app', extra: { 'authentication.kubernetes.io/pod-name': ['p-1'] } },
      })),
    ).toEqual({ ok: true, identity: { namespace: 'team-a', serviceAccount: 'app', podName: 'p-1' } });
  });
  it('refuses unauthenticated (401), audience-less (401) and non-ServiceAccount (403) reviews', () => {
    expect(identityFromReview(review({ authenticated: false, error: 'expired' }))).toEqual({ ok: false, status: 401, message: 'token rejected by TokenReview: expired' });
    expect(identityFromReview(review({ authenticated: true, user: { username: 'system:serviceaccount:a:b' } }))).toMatchObject({ ok: false, status: 401 });
    expect(identityFromReview(review({ authenticated: true, audiences: ['aigress'], user: { username: 'alice@example.com' } }))).toMatchObject({ ok: false, status: 403 });
  });
});

describe('TokenReviewer', () => {
  let api: FakeApiServer;
  beforeAll(async () => {
    api = await FakeApiServer.start();
    api.addToken('t1', { namespace: 'team-a', serviceAccount: 'app', audiences: ['aigress'] });
  });
  afterAll(async () => {
    await api.close();
  });
  const reviews = (): number => api.requests.filter((r) => r.path.endsWith('/tokenreviews')).length;

  it('reviews once per token per TTL, shares concurrent reviews, and answers 503 when the API server is down', async () => {
    const clock = new ManualClock();
    const k = kubeClients(kubeConfigFor({ server: api.url, caPem: api.caPem, token: api.adminToken, tlsServerName: 'localhost' }));
    const r = new TokenReviewer(k.authn, { cacheTtlMs: 60_000, clock });
    const n0 = reviews();
    const ids = await Promise.all([r.identify('t1'), r.identify('t1'), r.identify('t1')]);
    expect(ids[0]).toEqual({ namespace: 'team-a', serviceAccount: 'app' });
    expect(reviews() - n0).toBe(1);
    await r.identify('t1');
    expect(reviews() - n0).toBe(1);
    await clock.advance(61_000);
    await r.identify('t1');
    expect(reviews() - n0).toBe(2);
    // refusals are cached briefly (NEGATIVE_TTL_MS): a token that becomes valid works once that has passed
    await expect(r.identify('t2')).rejects.toMatchObject({ status: 401 });
    api.addToken('t2', { namespace: 'team-b', serviceAccount: 'x', audiences: ['aigress'] });
    await expect(r.identify('t2')).rejects.toMatchObject({ status: 401 });
    await clock.advance(NEGATIVE_TTL_MS);
    await expect(r.identify('t2')).resolves.toEqual({ namespace: 'team-b', serviceAccount: 'x' });
    api.injectFault('POST', '/apis/authentication.k8s.io', 500);
    const err: unknown = await r.identify('t3').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HttpRefusal);
    expect((err as HttpRefusal).status).toBe(503);
  });

  it('2,000 garbage tokens from one address cost at most the burst in reviews; cached and other callers are served', async () => {
    const clock = new ManualClock();
    const k = kubeClients(kubeConfigFor({ server: api.url, caPem: api.caPem, token: api.adminToken, tlsServerName: 'localhost' }));
    const r = new TokenReviewer(k.authn, { clock });
    await r.identify('t1', '10.0.0.9'); // an honest proxy, reviewed before the flood
    const n0 = reviews();
    const statuses = new Map<number, number>();
    for (let i = 0; i < 2_000; i++) {
      const err = (await r.identify(`garbage-${i}`, '10.0.0.66').catch((e: unknown) => e)) as HttpRefusal;
      statuses.set(err.status, (statuses.get(err.status) ?? 0) + 1);
    }
    expect(reviews() - n0).toBe(SOURCE_LIMIT.burst);
    expect(statuses.get(401)).toBe(SOURCE_LIMIT.burst);
    expect(statuses.get(429)).toBe(2_000 - SOURCE_LIMIT.burst);
    // the same garbage token again: answered from the negative cache, not reviewed, not rate limited
    await expect(r.identify('garbage-0', '10.0.0.66')).rejects.toMatchObject({ status: 401 });
    expect(reviews() - n0).toBe(SOURCE_LIMIT.burst);
    // the honest proxy (cached) and a proxy at another address are unaffected
    await expect(r.identify('t1', '10.0.0.66')).resolves.toMatchObject({ namespace: 'team-a' });
    await expect(r.identify('t1', '10.0.0.9')).resolves.toMatchObject({ namespace: 'team-a' });
    api.addToken('t4', { namespace: 'team-c', serviceAccount: 'y', audiences: ['aigress'] });
    await expect(r.identify('t4', '10.0.0.10')).resolves.toMatchObject({ namespace: 'team-c' });
    // the flooding address gets reviews again as its bucket refills
    await clock.advance(1_000 / SOURCE_LIMIT.perSecond);
    await expect(r.identify('garbage-x', '10.0.0.66')).rejects.toMatchObject({ status: 401 });
  });
});
