import 'reflect-metadata'; // @peculiar/x509 is imported directly below
import { X509Certificate, webcrypto } from 'node:crypto';
import { createServer as createTlsServer, connect } from 'node:tls';
import type { AddressInfo } from 'node:net';
import * as x509 from '@peculiar/x509';
import { Registry } from 'prom-client';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultPolicySpec } from '../../../shared/policy/validate.js';
import { createCA, createCsr, issueLeaf, loadCA, type CertificateAuthority, type CsrFacts } from '../../../shared/pki.js';
import { decideCsr, issuerRoutes, RateLimiter, type IssueResponse } from '../../../webhook/issuer.js';
import { kubeClients, kubeConfigFor } from '../../../webhook/kube.js';
import { compileNamespacePolicy } from '../../../webhook/policy/compile.js';
import { PolicyStore } from '../../../webhook/policy/store.js';
import { TokenReviewer } from '../../../webhook/tokenreview.js';
import { ManualClock } from '../../support/clock.js';
import { FakeApiServer } from '../../support/fake-apiserver.js';
import { captureLogger } from '../../support/log.js';
import { serveRoutes } from '../../support/route-server.js';

const facts = (over: Partial<CsrFacts> = {}): CsrFacts => ({
  signatureValid: true,
  keyAlgorithm: 'ECDSA P-256',
  dnsNames: ['api.openai.com'],
  otherNames: [],
  requestsCa: false,
  ...over,
});

describe('decideCsr (pure)', () => {
  it('allows the table names and catalogue hosts of enabled providers only', () => {
    expect(decideCsr(facts({ dnsNames: ['api.openai.com', 'eu.api.openai.com', 'api.openai.com'] }), ['openai'])).toEqual({
      ok: true,
      names: ['api.openai.com', 'eu.api.openai.com'],
    });
    expect(decideCsr(facts({ dnsNames: ['*.openai.azure.com', 'myres.openai.azure.com'] }), ['azure-openai']).ok).toBe(true);
    // a Bedrock region not in the table: issuable on demand because the catalogue says it is Bedrock's
    expect(decideCsr(facts({ dnsNames: ['bedrock-runtime.xx-future-9.amazonaws.com'] }), ['bedrock']).ok).toBe(true);
    const outside = decideCsr(facts({ dnsNames: ['api.openai.com', 'api.anthropic.com'] }), ['openai']);
    expect(outside).toEqual({ ok: false, message: expect.stringMatching(/outside the namespace's policy \(providers: openai\): "api.anthropic.com"$/) });
    // wildcards come only from the table: a broader or other one is refused
    for (const n of ['*.azure.com', '*.amazonaws.com', '*.googleapis.com', '*-aiplatform.googleapis.com', 'evil.com', 'API.OPENAI.COM', '10.0.0.1']) {
      expect(decideCsr(facts({ dnsNames: [n] }), ['openai', 'azure-openai', 'bedrock', 'vertex-ai']).ok, n).toBe(false);
    }
  });

  it('refuses CA rights, IP or other SANs, other keys, bad signatures and empty name lists, each with its reason', () => {
    const msg = (f: CsrFacts): string => {
      const d = decideCsr(f, ['openai']);
      return d.ok ? 'ok' : d.message;
    };
    expect(msg(facts({ requestsCa: true }))).toMatch(/CA rights/);
    expect(msg(facts({ otherNames: ['ip:10.0.0.1'] }))).toMatch(/IP addresses \(10\.0\.0\.1\)/);
    expect(msg(facts({ otherNames: ['email:a@b.c'] }))).toMatch(/other than DNS names \(email:a@b.c\)/);
    expect(msg(facts({ keyAlgorithm: 'RSASSA-PKCS1-v1_5' }))).toMatch(/use ECDSA P-256/);
    expect(msg(facts({ signatureValid: false }))).toMatch(/signature does not verify/);
    expect(msg(facts({ dnsNames: [] }))).toMatch(/no DNS names/);
  });
});

describe('RateLimiter', () => {
  it('allows a burst, then refills at its rate, per key', () => {
    const clock = new ManualClock(0);
    const rl = new RateLimiter(2, 0.5, clock);
    expect([rl.take('a'), rl.take('a'), rl.take('a')]).toEqual([0, 0, 2]);
    expect(rl.take('b')).toBe(0);
    void clock.advance(2000);
    expect(rl.take('a')).toBe(0);
    expect(rl.take('a')).toBe(2);
  });
});

describe('POST /v1/certificates against TokenReview on the fake API server', () => {
  let api: FakeApiServer;
  let ca: CertificateAuthority;
  let base: string;
  let close: () => Promise<void>;
  let dispatcher: Agent;
  const store = new PolicyStore();
  const logs = captureLogger();
  const registry = new Registry();

  beforeAll(async () => {
    api = await FakeApiServer.start();
    const caPair = await createCA('issuer test CA');
    ca = await loadCA(caPair.certPem, caPair.keyPem);
    api.addToken('tok-a', { namespace: 'team-a', serviceAccount: 'app', audiences: ['aigress'], podName: 'app-7d9' });
    api.addToken('tok-a2', { namespace: 'team-a', serviceAccount: 'batch', audiences: ['aigress'] });
    api.addToken('tok-b', { namespace: 'team-b', serviceAccount: 'app', audiences: ['aigress'] });
    api.addToken('tok-vault', { namespace: 'team-a', serviceAccount: 'app', audiences: ['vault'] });
    const spec = { ...defaultPolicySpec(), providers: ['openai' as const, 'azure-openai' as const] };
    const compiled = compileNamespacePolicy(spec, 'team-a');
    if (!compiled.ok) throw new Error('bad default');
    store.setPolicy('team-a', compiled.policy); // team-b is not opted in
    store.markSynced();
    const k = kubeClients(kubeConfigFor({ server: api.url, caPem: api.caPem, token: api.adminToken, tlsServerName: 'localhost' }));
    const reviewer = new TokenReviewer(k.authn);
    const routes = issuerRoutes({ ca, identify: (t) => reviewer.identify(t), store, log: logs.log, registry, rateLimit: { burst: 10, perSecond: 0.001 } });
    const serving = await issueLeaf(ca, { dnsNames: ['aigress.aigress-system.svc'] });
    const srv = await serveRoutes(routes, serving);
    base = srv.url;
    close = srv.close;
    dispatcher = new Agent({ connect: { ca: ca.certPem, servername: 'aigress.aigress-system.svc' } });
  });
  afterAll(async () => {
    await dispatcher.close();
    await close();
    await api.close();
  });

  async function post(body: unknown, token?: string, contentType = 'application/json'): Promise<{ status: number; json: Record<string, unknown>; headers: Record<string, unknown> }> {
    const res = await request(`${base}/v1/certificates`, {
      method: 'POST',
      dispatcher,
      headers: { 'content-type': contentType, ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
    return { status: res.statusCode, json: (await res.body.json()) as Record<string, unknown>, headers: res.headers };
  }
  const reason = (r: { json: Record<string, unknown> }): unknown => (r.json.error as { reason: string }).reason;
  const message = (r: { json: Record<string, unknown> }): string => (r.json.error as { message: string }).message;

  async function csrWith(extensions: x509.Extension[], alg: 'P-256' | 'P-384' = 'P-256'): Promise<string> {
    const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: alg }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({
      name: 'CN=x',
      keys,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } as webcrypto.EcdsaParams,
      extensions,
    });
    return csr.toString('pem');
  }

  it('issues a P-256, CA:false, server-auth-only leaf of at most 24 h that TLS clients accept for its hosts only', async () => {
    const { csrPem, keyPem } = await createCsr(['api.openai.com', '*.openai.azure.com']);
    const r = await post({ csr: csrPem }, 'tok-a');
    expect(r.status).toBe(201);
    const out = r.json as unknown as IssueResponse;
    expect(out.ca).toBe(ca.certPem);
    const leaf = new X509Certificate(out.certificate);
    expect(leaf.ca).toBe(false);
    expect(leaf.subjectAltName).toBe('DNS:api.openai.com, DNS:*.openai.azure.com');
    expect(leaf.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']); // extended key usage: serverAuth only
    expect(leaf.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(Date.parse(leaf.validTo) - Date.now()).toBeLessThanOrEqual(24 * 3_600_000);
    expect(leaf.checkIssued(new X509Certificate(ca.certPem))).toBe(true);
    expect(leaf.serialNumber.toLowerCase().replace(/^0+/, '')).toBe(out.serial.replace(/^0+/, ''));

    // A standard TLS client (Node's, OpenSSL underneath) trusting only the CA:
    const server = createTlsServer({ cert: out.certificate, key: keyPem }, (s) => s.end('hi'));
    await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
    const port = (server.address() as AddressInfo).port;
    const handshake = (servername: string): Promise<string> =>
      new Promise((resolve) => {
        const s = connect({ port, host: '127.0.0.1', servername, ca: ca.certPem }, () => {
          s.end();
          resolve('ok');
        });
        s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
      });
    try {
      expect(await handshake('api.openai.com')).toBe('ok');
      expect(await handshake('myresource.openai.azure.com')).toBe('ok');
      expect(await handshake('api.anthropic.com')).toBe('ERR_TLS_CERT_ALTNAME_INVALID');
      expect(await handshake('a.b.openai.azure.com')).toBe('ERR_TLS_CERT_ALTNAME_INVALID');
    } finally {
      server.close();
    }

    const line = logs.lines().find((l) => l.msg === 'leaf certificate issued')!;
    expect(line).toMatchObject({ namespace: 'team-a', serviceAccount: 'app', pod: 'app-7d9', names: ['api.openai.com', '*.openai.azure.com'], serial: out.serial, notAfter: out.notAfter });
    expect(logs.text()).not.toContain('tok-a"');
    expect(logs.text()).not.toMatch(/PRIVATE KEY|BEGIN CERTIFICATE REQUEST/);
  });

  it('refuses a missing token (401), an unknown token (401), a token for another audience (401)', async () => {
    const { csrPem } = await createCsr(['api.openai.com']);
    const none = await post({ csr: csrPem });
    expect([none.status, reason(none)]).toEqual([401, 'Unauthenticated']);
    const forged = await post({ csr: csrPem }, 'forged');
    expect([forged.status, reason(forged)]).toEqual([401, 'Unauthenticated']);
    expect(message(forged)).toMatch(/token rejected by TokenReview/);
    const vault = await post({ csr: csrPem }, 'tok-vault');
    expect(vault.status).toBe(401);
    expect(message(vault)).toMatch(/audiences/);
  });

  it('refuses a namespace that is not opted in (403)', async () => {
    const { csrPem } = await createCsr(['api.openai.com']);
    const r = await post({ csr: csrPem }, 'tok-b');
    expect([r.status, reason(r)]).toEqual([403, 'NamespaceNotEnabled']);
    expect(message(r)).toBe('namespace team-b is not opted in (label it aigress.io/inject=enabled)');
  });

  it('refuses CA rights, IP SANs, names outside the policy and malformed CSRs (400), with the reason', async () => {
    const cases: Array<[string, unknown, RegExp]> = [
      ['ca', { csr: await csrWith([new x509.BasicConstraintsExtension(true), new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'api.openai.com' }])]) }, /CA rights/],
      ['ip', { csr: await csrWith([new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'api.openai.com' }, { type: 'ip', value: '10.1.2.3' }])]) }, /IP addresses \(10\.1\.2\.3\)/],
      ['outside', { csr: (await createCsr(['api.openai.com', 'api.anthropic.com'])).csrPem }, /outside the namespace's policy.*"api.anthropic.com"/],
      ['p384', { csr: await csrWith([new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'api.openai.com' }])], 'P-384') }, /ECDSA P-384; use ECDSA P-256/],
      ['garbage', { csr: '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n' }, /^malformed CSR: /],
      ['not pem', { csr: 'hello' }, /body must be \{"csr"/],
      ['no csr', { certificate: 'x' }, /body must be \{"csr"/],
    ];
    for (const [name, body, re] of cases) {
      const r = await post(body, 'tok-a2');
      expect(r.status, name).toBe(400);
      expect(message(r), name).toMatch(re);
    }
    // a CSR whose signature was tampered with
    const { csrPem } = await createCsr(['api.openai.com']);
    const der = Buffer.from(csrPem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
    der[der.length - 3] = der[der.length - 3]! ^ 0x01;
    const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
    const t = await post({ csr: tampered }, 'tok-a2');
    expect(t.status).toBe(400);
    expect(message(t)).toMatch(/signature does not verify|malformed CSR/);
    const notJson = await post('{nope', 'tok-a');
    expect(notJson.status).toBe(400);
  });

  it('rate-limits per ServiceAccount with 429 and Retry-After; other ServiceAccounts are unaffected', async () => {
    api.addToken('tok-c', { namespace: 'team-a', serviceAccount: 'burst', audiences: ['aigress'] });
    const { csrPem } = await createCsr(['api.openai.com']);
    const statuses: number[] = [];
    let last: Awaited<ReturnType<typeof post>> | undefined;
    for (let i = 0; i < 11; i++) {
      last = await post({ csr: csrPem }, 'tok-c');
      statuses.push(last.status);
    }
    expect(statuses).toEqual([...Array<number>(10).fill(201), 429]);
    expect(reason(last!)).toBe('RateLimited');
    expect(Number(last!.headers['retry-after'])).toBeGreaterThan(0);
    expect((await post({ csr: csrPem }, 'tok-a')).status).toBe(201);
    const metrics = await registry.metrics();
    expect(metrics).toMatch(/aigress_issuer_requests_refused_total\{reason="RateLimited"\} 1/);
  });

  it('serves the CA certificate at GET /v1/ca, and never its key', async () => {
    const res = await request(`${base}/v1/ca`, { dispatcher });
    const text = await res.body.text();
    expect(res.statusCode).toBe(200);
    expect(text).toBe(ca.certPem);
    expect(text).not.toMatch(/PRIVATE KEY/);
  });
});
