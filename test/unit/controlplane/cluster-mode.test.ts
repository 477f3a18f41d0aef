import { X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer, type SecureContext } from 'node:tls';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EgressPolicy } from '../../../shared/policy/types.js';
import { defaultPolicySpec } from '../../../shared/policy/validate.js';
import { clusterSources, POLICY_STATE_FILE } from '../../../sidecar/proxy/sources/cluster.js';
import { ManualClock } from '../../support/clock.js';
import { startLocalControlPlane, type LocalControlPlane } from '../../support/control-plane.js';
import { captureLogger } from '../../support/log.js';

const EP = 'aigress.io/v1alpha1';

const waitFor = async <T>(fn: () => T | undefined | false | Promise<T | undefined | false>, ms = 5000): Promise<T> => {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
};

/** Handshake as an app would: trusting only `caPem`, for `host`. Resolves 'ok' or the TLS error code. */
async function handshake(ctx: SecureContext, host: string, caPem: string): Promise<{ result: string; serial?: string }> {
  const server = createServer({ SNICallback: (_name, cb) => cb(null, ctx) }, (s) => s.end());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    return await new Promise((resolve) => {
      const s = connect({ port: (server.address() as AddressInfo).port, host: '127.0.0.1', servername: host, ca: caPem }, () => {
        const serial = s.getPeerX509Certificate()?.serialNumber;
        s.end();
        resolve({ result: 'ok', serial });
      });
      s.on('error', (e: NodeJS.ErrnoException) => resolve({ result: e.code ?? e.message }));
    });
  } finally {
    server.close();
  }
}

/** Sum of a metric's series whose labels include `labels`. */
const metric = async (registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> => {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
  const match = (v: { labels: Record<string, unknown> }): boolean => Object.entries(labels).every(([k, x]) => v.labels[k] === x);
  return (m?.values ?? []).filter((v) => match(v as { labels: Record<string, unknown> })).reduce((a, v) => a + v.value, 0);
};

describe('proxy cluster mode against a local control plane', () => {
  let lcp: LocalControlPlane;
  let stateDir: string;

  beforeAll(async () => {
    lcp = await startLocalControlPlane({ defaults: { ...defaultPolicySpec(), providers: ['openai'] } });
    lcp.enableNamespace('team-a');
    await waitFor(() => lcp.cp.store.get('team-a'));
    stateDir = await mkdtemp(join(tmpdir(), 'aigress-state-'));
  });
  afterAll(async () => {
    await lcp.close();
    await rm(stateDir, { recursive: true, force: true });
  });

  it('gets its certificate by CSR and its policy by long poll; a policy edit reaches it live', async () => {
    const tokenFile = await lcp.tokenFile('team-a', 'app');
    const registry = new Registry();
    const { log } = captureLogger();
    const s = clusterSources({ controlPlane: new URL(lcp.url), tokenFile, log, caPem: lcp.cp.caPem, stateDir, registry, longPollSeconds: 10, backoffBaseMs: 100 });
    try {
      const policy = await s.policy.ready();
      expect(policy.metadata).toEqual({ name: 'cluster-default', namespace: 'team-a' });
      await s.certificates.ready();
      expect(s.certificates.caPem()).toBe(lcp.cp.caPem);
      const ctx = s.certificates.contextFor('api.openai.com');
      expect(ctx).not.toBeInstanceOf(Promise); // from memory once ready
      expect((await handshake(ctx as SecureContext, 'api.openai.com', lcp.cp.caPem)).result).toBe('ok');
      expect((await handshake(ctx as SecureContext, 'eu.api.openai.com', lcp.cp.caPem)).result).toBe('ok');
      expect((await handshake(ctx as SecureContext, 'api.openai.com', (await import('../../../shared/pki.js').then((p) => p.createCA('other'))).certPem)).result).toBe(
        'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
      );
      const issued = lcp.logText().split('\n').filter((l) => l.includes('leaf certificate issued'));
      expect(issued.length).toBe(1);
      expect(JSON.parse(issued[0]!)).toMatchObject({ namespace: 'team-a', serviceAccount: 'app', names: ['api.openai.com', 'eu.api.openai.com'] });

      const seen: EgressPolicy[] = [];
      s.policy.onChange((p) => seen.push(p));
      const t0 = Date.now();
      lcp.api.put(EP, 'egresspolicies', {
        apiVersion: EP,
        kind: 'EgressPolicy',
        metadata: { name: 'team-a', namespace: 'team-a' },
        spec: { providers: ['openai', 'anthropic'], unmatchedEgress: 'deny' },
      });
      await waitFor(() => seen.length > 0);
      expect(Date.now() - t0).toBeLessThan(5000);
      expect(s.policy.current().spec.providers).toEqual(['openai', 'anthropic']);
      expect(s.policy.current().spec.unmatchedEgress).toBe('deny');
      // the newly enabled provider's host gets into the certificate without a restart
      await waitFor(async () => {
        const c = s.certificates.contextFor('api.anthropic.com');
        return !(c instanceof Promise) && (await handshake(c, 'api.anthropic.com', lcp.cp.caPem)).result === 'ok';
      });
      const saved = JSON.parse(await readFile(join(stateDir, POLICY_STATE_FILE), 'utf8')) as { policy: EgressPolicy };
      expect(saved.policy.spec.providers).toEqual(['openai', 'anthropic']);
      expect(await metric(registry, 'aigress_proxy_policy_updates_total')).toBe(1);
    } finally {
      s.certificates.close();
      s.policy.close();
    }
  });

  it('keeps enforcing through an invalid edit and a control plane outage, and restarts from the saved policy', async () => {
    const tokenFile = await lcp.tokenFile('team-a', 'app');
    const registry = new Registry();
    const { log } = captureLogger();
    const s = clusterSources({ controlPlane: new URL(lcp.url), tokenFile, log, caPem: lcp.cp.caPem, stateDir, registry, longPollSeconds: 2, backoffBaseMs: 100, backoffMaxMs: 200 });
    try {
      const good = await s.policy.ready();
      await s.certificates.ready();
      const seen: EgressPolicy[] = [];
      s.policy.onChange((p) => seen.push(p));
      const cur = lcp.api.get(EP, 'egresspolicies', 'team-a', 'team-a')!;
      lcp.api.put(EP, 'egresspolicies', { ...cur, spec: { providers: ['openai'], filters: [{ type: 'regex', pattern: '(unclosed' }] } });
      await waitFor(() => {
        const st = lcp.api.get(EP, 'egresspolicies', 'team-a', 'team-a')!.status as { conditions?: Array<{ status: string; message: string }> } | undefined;
        return st?.conditions?.[0]?.status === 'False' && st.conditions[0];
      });
      await new Promise((r) => setTimeout(r, 1000));
      expect(seen).toEqual([]);
      expect(s.policy.current()).toEqual(good);

      // The control plane goes away: failures are counted, the policy and certificate stay.
      lcp.server.server.closeAllConnections();
      await lcp.server.close();
      await waitFor(async () => (await metric(registry, 'aigress_proxy_policy_fetch_failures_total')) >= 2, 8000);
      expect(s.policy.current()).toEqual(good);
      expect(s.certificates.contextFor('api.openai.com')).not.toBeInstanceOf(Promise);

      // A new proxy container in the same pod (same emptyDir) starts from the saved policy while it is away.
      const restarted = clusterSources({ controlPlane: new URL(lcp.url), tokenFile, log, caPem: lcp.cp.caPem, stateDir, registry: new Registry(), backoffBaseMs: 100 });
      try {
        expect(await restarted.policy.ready()).toEqual(good);
      } finally {
        restarted.policy.close();
      }
    } finally {
      await lcp.server.listen(lcp.port, '127.0.0.1');
      s.certificates.close();
      s.policy.close();
    }
  });

  it('renews at two thirds of the lifetime under a moved clock, serving the old certificate while renewal fails', async () => {
    const tokenFile = await lcp.tokenFile('team-a', 'renewer');
    const registry = new Registry();
    const clock = new ManualClock();
    const { log } = captureLogger();
    const s = clusterSources({ controlPlane: new URL(lcp.url), tokenFile, log, caPem: lcp.cp.caPem, stateDir: await mkdtemp(join(tmpdir(), 'aigress-state-')), registry, clock, longPollSeconds: 30, backoffBaseMs: 1000 });
    const H = 3_600_000;
    // settle: until the attempt that a timer started has finished and scheduled its successor
    const settleUntil = (cond: () => Promise<boolean> | boolean) => async () => {
      const end = Date.now() + 5000;
      while (!(await cond()) && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    };
    try {
      await s.certificates.ready();
      const first = s.certificates.contextFor('api.openai.com') as SecureContext;
      const serial1 = (await handshake(first, 'api.openai.com', lcp.cp.caPem)).serial;
      await clock.advance(15 * H, async () => {});
      expect(s.certificates.contextFor('api.openai.com')).toBe(first);

      lcp.server.server.closeAllConnections();
      await lcp.server.close();
      const failuresBefore = await metric(registry, 'aigress_proxy_certificate_renewal_failures_total');
      await clock.advance(H + 60_000, settleUntil(async () => (await metric(registry, 'aigress_proxy_certificate_renewal_failures_total')) > failuresBefore));
      expect(await metric(registry, 'aigress_proxy_certificate_renewal_failures_total')).toBe(failuresBefore + 1);
      expect(s.certificates.contextFor('api.openai.com')).toBe(first); // still serving

      await lcp.server.listen(lcp.port, '127.0.0.1');
      await clock.advance(1000, settleUntil(() => s.certificates.contextFor('api.openai.com') !== first));
      const second = s.certificates.contextFor('api.openai.com') as SecureContext;
      expect(second).not.toBe(first);
      const serial2 = (await handshake(second, 'api.openai.com', lcp.cp.caPem)).serial;
      expect(serial2).not.toBe(serial1);
    } finally {
      if (!lcp.server.server.listening) await lcp.server.listen(lcp.port, '127.0.0.1');
      s.certificates.close();
      s.policy.close();
    }
  });

  it('asks for a certificate per host for AI hosts outside the table, and is refused for hosts outside its policy', async () => {
    lcp.enableNamespace('team-v');
    lcp.api.put(EP, 'egresspolicies', { apiVersion: EP, kind: 'EgressPolicy', metadata: { name: 'v', namespace: 'team-v' }, spec: { providers: ['vertex-ai'] } });
    await waitFor(() => lcp.cp.store.get('team-v')?.kind === 'policy' && (lcp.cp.store.get('team-v') as { policy: EgressPolicy }).policy.spec.providers[0] === 'vertex-ai');
    const tokenFile = await lcp.tokenFile('team-v', 'app');
    const { log } = captureLogger();
    const s = clusterSources({ controlPlane: new URL(lcp.url), tokenFile, log, caPem: lcp.cp.caPem, stateDir: await mkdtemp(join(tmpdir(), 'aigress-state-')), registry: new Registry() });
    try {
      await s.certificates.ready();
      expect(s.certificates.contextFor('europe-west4-aiplatform.googleapis.com')).not.toBeInstanceOf(Promise);
      const later = s.certificates.contextFor('us-central9-aiplatform.googleapis.com');
      expect(later).toBeInstanceOf(Promise);
      const ctx = await later;
      expect((await handshake(ctx, 'us-central9-aiplatform.googleapis.com', lcp.cp.caPem)).result).toBe('ok');
      expect(s.certificates.contextFor('us-central9-aiplatform.googleapis.com')).toBe(ctx); // kept
      await expect(s.certificates.contextFor('api.openai.com')).rejects.toThrow(/400: CSR asks for names outside the namespace's policy/);
    } finally {
      s.certificates.close();
      s.policy.close();
    }
  });

  it('does not become ready without a policy, and becomes ready when its namespace is opted in', async () => {
    lcp.api.put('v1', 'namespaces', { metadata: { name: 'team-late' } });
    const tokenFile = await lcp.tokenFile('team-late', 'app');
    const registry = new Registry();
    const { log } = captureLogger();
    const dir = await mkdtemp(join(tmpdir(), 'aigress-state-'));
    const s = clusterSources({ controlPlane: new URL(lcp.url), tokenFile, log, caPem: lcp.cp.caPem, stateDir: dir, registry, backoffBaseMs: 100, backoffMaxMs: 300 });
    try {
      let ready = false;
      void Promise.all([s.policy.ready(), s.certificates.ready()]).then(() => (ready = true));
      await waitFor(async () => (await metric(registry, 'aigress_proxy_policy_fetch_failures_total')) >= 2);
      expect(ready).toBe(false);
      // The metric says why: the control plane's reason, not a bare count.
      expect(await metric(registry, 'aigress_proxy_policy_fetch_failures_total', { reason: 'NamespaceNotEnabled' })).toBeGreaterThanOrEqual(2);
      expect(existsSync(join(dir, POLICY_STATE_FILE))).toBe(false);
      lcp.enableNamespace('team-late');
      await waitFor(() => ready);
      expect(new X509Certificate(s.certificates.caPem()).ca).toBe(true);
    } finally {
      s.certificates.close();
      s.policy.close();
    }
  });
});
