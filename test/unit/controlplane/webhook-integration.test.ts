import { createPrivateKey } from 'node:crypto';
import { request } from 'node:https';
import jsonpatch, { type Operation } from 'fast-json-patch';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalControlPlane, type LocalControlPlane } from '../../support/control-plane.js';
import { review as reviewFor } from '../../support/admission-review.js';

// The API server's side of admission against the whole control plane: it calls /mutate over TLS verified with
// the caBundle the control plane wrote into the MutatingWebhookConfiguration, applies the returned JSONPatch,
// and the pod it gets carries the CA certificate for the proxy and no trace of the CA's private key.

interface Container {
  name: string;
  args?: string[];
  env?: Array<{ name: string; value?: string }>;
}

describe('admission through the control plane', () => {
  let lcp: LocalControlPlane;
  beforeAll(async () => {
    lcp = await startLocalControlPlane();
    lcp.enableNamespace('team-a');
  }, 30_000);
  afterAll(async () => {
    await lcp.close();
  });

  /** POST /mutate as kube-apiserver does: TLS verified against the MWC's caBundle for the Service's name. */
  function callWebhook(caBundlePem: string, review: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
    const body = JSON.stringify(review);
    return new Promise((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port: lcp.port,
          servername: 'aigress.aigress-system.svc',
          ca: caBundlePem,
          method: 'POST',
          path: '/mutate',
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString()) as Record<string, unknown> }));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }

  it('is trusted through the caBundle it wrote, and injects a proxy that has the CA certificate and no CA key', async () => {
    const bundle = (): string | undefined => {
      const mwc = lcp.api.get('admissionregistration.k8s.io/v1', 'mutatingwebhookconfigurations', undefined, 'aigress')!;
      return (mwc.webhooks as Array<{ clientConfig: { caBundle?: string } }>)[0]!.clientConfig.caBundle;
    };
    for (let i = 0; i < 250 && !bundle(); i++) await new Promise((r) => setTimeout(r, 20));
    const caBundle = bundle();
    expect(caBundle).toBeDefined();
    const caBundlePem = Buffer.from(caBundle!, 'base64').toString();
    expect(caBundlePem).toBe(lcp.cp.caPem);

    const pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'app', namespace: 'team-a', labels: { app: 'app' } },
      spec: { serviceAccountName: 'app', containers: [{ name: 'app', image: 'registry.example.com/app:1' }] },
    };
    const review = reviewFor(pod, { uid: 'b2b2c3d4-0000-4000-8000-000000000001', name: 'app', namespace: 'team-a' });
    const res = await callWebhook(caBundlePem, review);
    expect(res.status).toBe(200);
    const response = res.body.response as { allowed: boolean; patchType?: string; patch?: string };
    expect(response.allowed).toBe(true);
    expect(response.patchType).toBe('JSONPatch');
    const ops = JSON.parse(Buffer.from(response.patch!, 'base64').toString()) as Operation[];
    const injected = jsonpatch.applyPatch(structuredClone(pod), ops, true, false).newDocument as typeof pod & {
      spec: { initContainers?: Container[]; containers: Container[] };
    };
    const proxy = [...(injected.spec.initContainers ?? []), ...injected.spec.containers].find((c) => c.name === 'aigress-proxy')!;
    expect(proxy.args).toContain('--control-plane');
    expect(proxy.env?.find((e) => e.name === 'AIGRESS_CONTROL_PLANE_CA')?.value).toBe(lcp.cp.caPem);

    // The CA key, as stored in its Secret: its secret part (the private scalar) is nowhere in the injected pod,
    // the patch or the control plane's log, in any encoding. (The key's DER prefix is the same for every P-256
    // key and shares OIDs with public certificates, so it is not what we look for.)
    const secret = lcp.api.get('v1', 'secrets', 'aigress-system', 'aigress-ca')!;
    const keyPem = Buffer.from((secret.data as Record<string, string>)['tls.key']!, 'base64').toString();
    const d = Buffer.from(createPrivateKey(keyPem).export({ format: 'jwk' }).d!, 'base64url');
    expect(d).toHaveLength(32);
    const needles = [d.toString('base64'), d.toString('base64url'), d.toString('hex'), d.subarray(0, 16).toString('hex'), 'PRIVATE KEY'];
    // the scalar as it sits in the PEM: bytes 36..68 of the PKCS#8 DER, i.e. base64 characters 48..92
    const keyBody = keyPem.replace(/-----[A-Z ]+-----|\s/g, '');
    for (let i = 48; i + 16 <= 92; i += 4) needles.push(keyBody.slice(i, i + 16));
    const haystacks = {
      pod: JSON.stringify(injected),
      patch: Buffer.from(response.patch!, 'base64').toString(),
      review: JSON.stringify(res.body),
      log: lcp.logText(),
    };
    for (const [where, text] of Object.entries(haystacks)) {
      for (const n of needles) expect(text.includes(n), `${where} contains ${n.slice(0, 8)}…`).toBe(false);
    }
    expect(haystacks.pod).toContain('BEGIN CERTIFICATE'); // it does carry the certificate, so the search is real
  });
});
