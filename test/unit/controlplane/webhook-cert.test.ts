import { X509Certificate } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import { connect } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCA, loadCA, type CertificateAuthority } from '../../../shared/pki.js';
import { CaBundleReconciler, ensureCaBundle, servingDnsNames, ServingCertificate } from '../../../webhook/webhook-cert.js';
import { kubeClients, kubeConfigFor, type KubeClients } from '../../../webhook/kube.js';
import { ManualClock } from '../../support/clock.js';
import { FakeApiServer } from '../../support/fake-apiserver.js';
import { captureLogger } from '../../support/log.js';

let ca: CertificateAuthority;
beforeAll(async () => {
  const p = await createCA('test CA');
  ca = await loadCA(p.certPem, p.keyPem);
});

/** The certificate a TLS client is shown for `servername`, verified against the CA (rejects otherwise). */
function peerCert(port: number, servername: string, caPem: string): Promise<X509Certificate> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1', servername, ca: caPem }, () => {
      const raw = s.getPeerX509Certificate();
      s.end();
      if (raw) resolve(raw);
      else reject(new Error('no peer certificate'));
    });
    s.on('error', reject);
  });
}

describe('webhook serving certificate', () => {
  it('covers the Service names', () => {
    expect(servingDnsNames('aigress', 'aigress-system')).toEqual([
      'aigress',
      'aigress.aigress-system',
      'aigress.aigress-system.svc',
      'aigress.aigress-system.svc.cluster.local',
    ]);
  });

  it('renews at two thirds of its lifetime under a moving clock, and a running server serves the new one', async () => {
    // Starts 20 h in the past so that the renewed certificate (issued 16 h later) is valid for the real TLS client.
    const clock = new ManualClock(Date.now() - 20 * 3_600_000);
    const { log } = captureLogger();
    const names = servingDnsNames('aigress', 'aigress-system');
    const cert = await ServingCertificate.start({ ca, dnsNames: names, validityMs: 24 * 3_600_000, clock, log });
    const first = cert.current();
    expect(first.notAfter.getTime()).toBe(clock.now() + 24 * 3_600_000);
    const server: Server = createServer({ cert: first.certPem, key: first.keyPem }, (_q, r) => r.end('ok'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cert.onRenew((p) => server.setSecureContext({ cert: p.certPem, key: p.keyPem }));
    const port = (server.address() as AddressInfo).port;
    try {
      const seen1 = await peerCert(port, 'aigress.aigress-system.svc', ca.certPem);
      expect(seen1.serialNumber).toBe(new X509Certificate(first.certPem).serialNumber);
      expect(seen1.checkHost('aigress.aigress-system.svc')).toBe('aigress.aigress-system.svc');

      // (24h + 1 min skew) * 2/3 after notBefore: 16h minus 20 s from now.
      // between timers, wait until the renewal has finished and queued the next one
      const settle = async (): Promise<void> => {
        for (let i = 0; i < 200 && clock.pending().length === 0; i++) await new Promise((r) => setTimeout(r, 10));
      };
      await clock.advance(15 * 3_600_000, settle);
      expect(cert.current().certPem).toBe(first.certPem);
      await clock.advance(3_600_000, settle);
      const second = cert.current();
      expect(second.certPem).not.toBe(first.certPem);
      expect(second.notAfter.getTime()).toBeGreaterThan(first.notAfter.getTime());
      expect(clock.pending()).toHaveLength(1); // the next renewal, and only it
      const seen2 = await peerCert(port, 'aigress.aigress-system.svc', ca.certPem);
      expect(seen2.serialNumber).toBe(new X509Certificate(second.certPem).serialNumber);
    } finally {
      cert.stop();
      server.close();
    }
  });
});

describe('caBundle of the MutatingWebhookConfiguration', () => {
  let api: FakeApiServer;
  let k: KubeClients;
  beforeAll(async () => {
    api = await FakeApiServer.start();
    k = kubeClients(kubeConfigFor({ server: api.url, caPem: api.caPem, token: api.adminToken, tlsServerName: 'localhost' }));
  });
  afterAll(async () => {
    await api.close();
  });

  const webhook = (name: string) => ({
    name,
    clientConfig: { service: { name: 'aigress', namespace: 'aigress-system', path: '/mutate' } },
    admissionReviewVersions: ['v1'],
    sideEffects: 'None',
  });

  it('writes the CA into every webhook of that one object, by name; a second pass changes nothing', async () => {
    api.put('admissionregistration.k8s.io/v1', 'mutatingwebhookconfigurations', { metadata: { name: 'aigress' }, webhooks: [webhook('pods.aigress.io'), webhook('other.aigress.io')] });
    api.put('admissionregistration.k8s.io/v1', 'mutatingwebhookconfigurations', { metadata: { name: 'someone-else' }, webhooks: [webhook('x.example.com')] });
    const before = api.requests.length;
    expect(await ensureCaBundle(k.admission, 'aigress', ca.certPem)).toBe('patched');
    const want = Buffer.from(ca.certPem).toString('base64');
    const mwc = api.get('admissionregistration.k8s.io/v1', 'mutatingwebhookconfigurations', undefined, 'aigress')!;
    expect((mwc.webhooks as Array<{ clientConfig: { caBundle?: string } }>).map((w) => w.clientConfig.caBundle)).toEqual([want, want]);
    const other = api.get('admissionregistration.k8s.io/v1', 'mutatingwebhookconfigurations', undefined, 'someone-else')!;
    expect((other.webhooks as Array<{ clientConfig: { caBundle?: string } }>)[0]!.clientConfig.caBundle).toBeUndefined();
    const rv = (mwc.metadata as { resourceVersion: string }).resourceVersion;
    expect(await ensureCaBundle(k.admission, 'aigress', ca.certPem)).toBe('unchanged');
    expect((api.get('admissionregistration.k8s.io/v1', 'mutatingwebhookconfigurations', undefined, 'aigress')!.metadata as { resourceVersion: string }).resourceVersion).toBe(rv);
    const paths = new Set(api.requests.slice(before).map((r) => `${r.method} ${r.path}`));
    expect([...paths].sort()).toEqual([
      'GET /apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/aigress',
      'PATCH /apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/aigress',
    ]);
  });

  it('puts the caBundle back when a helm upgrade wipes it, and waits for an object that does not exist yet', async () => {
    const clock = new ManualClock();
    const { log } = captureLogger();
    const r = new CaBundleReconciler({ admission: k.admission, name: 'later', caPem: ca.certPem, log, intervalMs: 60_000, clock });
    expect(await r.start()).toBe('missing');
    api.put('admissionregistration.k8s.io/v1', 'mutatingwebhookconfigurations', { metadata: { name: 'later' }, webhooks: [webhook('pods.aigress.io')] });
    const bundle = (): string | undefined =>
      (api.get('admissionregistration.k8s.io/v1', 'mutatingwebhookconfigurations', undefined, 'later')!.webhooks as Array<{ clientConfig: { caBundle?: string } }>)[0]!.clientConfig.caBundle;
    const settle = async (): Promise<void> => {
      // until the pass has written the bundle and queued the next one
      for (let i = 0; i < 200 && (bundle() === undefined || clock.pending().length === 0); i++) await new Promise((res) => setTimeout(res, 10));
    };
    await clock.advance(60_000, settle);
    expect(bundle()).toBe(Buffer.from(ca.certPem).toString('base64'));
    // helm upgrade re-applies the chart's object, without the bundle
    api.put('admissionregistration.k8s.io/v1', 'mutatingwebhookconfigurations', { metadata: { name: 'later' }, webhooks: [webhook('pods.aigress.io')] });
    expect(bundle()).toBeUndefined();
    await clock.advance(60_000, settle);
    expect(bundle()).toBe(Buffer.from(ca.certPem).toString('base64'));
    r.stop();
  });
});
