import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiStatus, kubeClients, kubeConfigFor } from '../../../webhook/kube.js';
import type { KubeWatch } from '../../../webhook/kube-watch.js';
import { FakeApiServer } from '../../support/fake-apiserver.js';

// The control plane's watch client (webhook/kube-watch.ts) against the fake API server: events line by line,
// an HTTP error with its status (a 410 must be recognisable), and an abort that works before the headers.

const waitFor = async <T>(fn: () => T | undefined | false, ms = 5000): Promise<T> => {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe('KubeWatch', () => {
  let api: FakeApiServer;
  let watch: KubeWatch;

  beforeAll(async () => {
    api = await FakeApiServer.start({ bookmarkIntervalMs: 100 });
    watch = kubeClients(kubeConfigFor({ server: api.url, caPem: api.caPem, token: api.adminToken, tlsServerName: 'localhost' })).watch as KubeWatch;
  });
  afterAll(() => api.close());

  it('delivers events and bookmarks in order, and tells done once when the server ends the watch', async () => {
    api.put('v1', 'namespaces', { metadata: { name: 'first' } });
    const events: string[] = [];
    const ended: unknown[] = [];
    await watch.watch('/api/v1/namespaces', { allowWatchBookmarks: true, timeoutSeconds: 1 }, (type, o: { metadata?: { name?: string } }) => events.push(`${type} ${o.metadata?.name ?? ''}`.trim()), (err) => ended.push(err));
    await waitFor(() => events.includes('ADDED first'));
    api.put('v1', 'namespaces', { metadata: { name: 'second' } });
    await waitFor(() => events.includes('ADDED second') && events.includes('BOOKMARK'));
    await waitFor(() => ended.length > 0, 3000); // timeoutSeconds: 1
    await new Promise((r) => setTimeout(r, 100));
    expect(ended).toEqual([null]);
    expect(events.indexOf('ADDED first')).toBeLessThan(events.indexOf('ADDED second'));
  });

  it('reports an HTTP error with its status', async () => {
    api.injectFault('GET', '/api/v1/namespaces', 410, 1);
    const err = await new Promise<unknown>((resolve) => void watch.watch('/api/v1/namespaces', { resourceVersion: '1' }, () => undefined, resolve));
    expect(apiStatus(err)).toBe(410);
  });

  it('aborts a watch whose API server never answers, releasing the request', async () => {
    api.stallWatches(true);
    try {
      const ended: unknown[] = [];
      const handle = await watch.watch('/api/v1/namespaces', {}, () => undefined, (err) => ended.push(err));
      await waitFor(() => api.unansweredWatches === 1);
      handle.abort();
      await waitFor(() => ended.length === 1);
      expect((ended[0] as Error).name).toBe('AbortError');
      await waitFor(() => api.unansweredWatches === 0);
    } finally {
      api.stallWatches(false);
    }
  });
});
