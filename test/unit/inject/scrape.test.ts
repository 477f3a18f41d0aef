// injection.proxy.prometheusScrape: annotation-based Prometheus discovery of the proxy's admin port, never over
// the pod's own annotations, and removed again by uninject exactly.
import fastJsonPatch from 'fast-json-patch';
import { describe, expect, it } from 'vitest';
import { uninjectPod } from '../../../cli/uninject/pod.js';
import { defaultConfig, validateConfig } from '../../../webhook/config.js';
import { inject } from '../../../webhook/inject/inject.js';
import type { Pod } from '../../../webhook/inject/types.js';

const { applyPatch, deepClone } = fastJsonPatch;
const base = defaultConfig().injection;
const scraping = { ...base, proxy: { ...base.proxy, prometheusScrape: true } };
const ctx = { namespace: 'team-a' };
const pod = (annotations?: Record<string, string>): Pod => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'p', ...(annotations && { annotations }) },
  spec: { containers: [{ name: 'app', image: 'app:1' }] },
});

describe('prometheus scrape annotations', () => {
  it('are off by default', () => {
    const r = inject(pod(), ctx, base);
    expect(Object.keys(r.pod!.metadata!.annotations!)).toEqual(['aigress.io/status']);
  });

  it('name the admin port and /metrics when enabled, and the status records them', () => {
    const input = pod();
    const r = inject(input, ctx, scraping);
    const a = r.pod!.metadata!.annotations!;
    expect(a).toMatchObject({ 'prometheus.io/scrape': 'true', 'prometheus.io/port': '14020', 'prometheus.io/path': '/metrics' });
    expect(JSON.parse(a['aigress.io/status']!).annotations).toEqual(['prometheus.io/scrape', 'prometheus.io/port', 'prometheus.io/path']);
    expect(applyPatch(deepClone(input), r.patch as never, true, false).newDocument).toEqual(r.pod);
  });

  it('never change an annotation the pod sets itself, and uninject leaves it', () => {
    const own = { 'prometheus.io/scrape': 'true', 'prometheus.io/port': '9090' };
    const input = pod(own);
    const r = inject(input, ctx, scraping);
    expect(r.pod!.metadata!.annotations).toMatchObject({ ...own, 'prometheus.io/path': '/metrics' });
    expect(JSON.parse(r.pod!.metadata!.annotations!['aigress.io/status']!).annotations).toEqual(['prometheus.io/path']);
    expect(uninjectPod(r.pod as never).pod).toEqual(input);
  });

  it('uninject(inject(pod)) is the pod again', () => {
    const input = pod({ team: 'a' });
    expect(uninjectPod(inject(input, ctx, scraping).pod as never).pod).toEqual(input);
  });

  it('the config option is a boolean, named in the error otherwise', () => {
    const ok = validateConfig({ injection: { proxy: { prometheusScrape: true } } });
    expect(ok.ok && ok.config.injection.proxy.prometheusScrape).toBe(true);
    const bad = validateConfig({ injection: { proxy: { prometheusScrape: 'yes' } } });
    expect(bad.ok).toBe(false);
    if (!bad.ok) expect(bad.issues.map((i) => i.path)).toEqual(['injection.proxy.prometheusScrape']);
  });
});
