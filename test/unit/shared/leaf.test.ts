import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { children, integer, readElement, time, unsignedInteger } from '../../../shared/der.js';
import { certificateValidity, createCsr, mintLeaf, signingCa } from '../../../shared/leaf.js';
import { createCA, loadCA, readCsr } from '../../../shared/pki.js';
import { handshake } from '../../support/tls-handshake.js';

const dir = mkdtempSync(join(tmpdir(), 'aigress-leaf-'));
let n = 0;
function file(text: string): string {
  const path = join(dir, `f${n++}.pem`);
  writeFileSync(path, text);
  return path;
}

function openssl(args: string[]): string {
  return execFileSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}


/** An RSA CA made by openssl itself (with a subject key identifier), as cert-manager might hand over. */
function opensslRsaCa(): { certPem: string; keyPem: string } {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  const certPem = openssl([
    'req', '-x509', '-new', '-key', file(keyPem), '-sha256', '-days', '30', '-subj', '/O=Example Corp/CN=Example RSA CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  return { certPem, keyPem };
}

describe('leaf certificates with node:crypto', () => {
  it('mints an ECDSA server leaf that node, openssl and a TLS client accept for its names only', async () => {
    const caPem = await createCA('leaf test CA');
    const ca = signingCa(caPem.certPem, caPem.keyPem);
    const leaf = await mintLeaf(ca, { dnsNames: ['api.openai.com', 'eastus.api.cognitive.microsoft.com'], validityMs: 3_600_000 });
    const x = new X509Certificate(leaf.certPem);
    const caCert = new X509Certificate(caPem.certPem);
    expect(x.ca).toBe(false);
    expect(x.checkIssued(caCert)).toBe(true);
    expect(x.verify(caCert.publicKey)).toBe(true);
    expect(x.subject).toBe('CN=api.openai.com');
    expect(x.issuer).toBe(caCert.subject);
    expect(x.subjectAltName).toBe('DNS:api.openai.com, DNS:eastus.api.cognitive.microsoft.com');
    expect(x.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(x.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']); // node reports the extended key usage here
    expect(Date.parse(x.validTo)).toBe(Math.floor(leaf.notAfter.getTime() / 1000) * 1000);
    expect(x.checkPrivateKey(await import('node:crypto').then((c) => c.createPrivateKey(leaf.keyPem)))).toBe(true);

    const text = openssl(['x509', '-noout', '-text', '-in', file(leaf.certPem)]);
    expect(text).toMatch(/Version: 3 \(0x2\)/);
    expect(text).toMatch(/Signature Algorithm: ecdsa-with-SHA256/);
    expect(text).toMatch(/X509v3 Basic Constraints: critical\s+CA:FALSE/);
    expect(text).toMatch(/X509v3 Key Usage: critical\s+Digital Signature\n/);
    expect(text).toMatch(/X509v3 Extended Key Usage:\s+TLS Web Server Authentication\n/);
    // The authority key identifier is the CA's subject key identifier, so chain builders match the two.
    const caText = openssl(['x509', '-noout', '-text', '-in', file(caPem.certPem)]);
    const ski = /Subject Key Identifier:\s+([0-9A-F:]+)/.exec(caText)?.[1];
    expect(ski).toBeDefined();
    expect(text).toContain(ski!);
    expect(openssl(['verify', '-CAfile', file(caPem.certPem), '-purpose', 'sslserver', file(leaf.certPem)])).toMatch(/: OK/);

    expect(await handshake(leaf, caPem.certPem, 'api.openai.com')).toBe('ok');
    expect(await handshake(leaf, caPem.certPem, 'eastus.api.cognitive.microsoft.com')).toBe('ok');
    expect(await handshake(leaf, caPem.certPem, 'api.anthropic.com')).toBe('ERR_TLS_CERT_ALTNAME_INVALID');
    expect(await handshake(leaf, (await createCA('other')).certPem, 'api.openai.com')).toBe('UNABLE_TO_VERIFY_LEAF_SIGNATURE');
  });

  it('signs with an RSA CA made by openssl, copying its subject and key identifier exactly', async () => {
    const caPem = opensslRsaCa();
    const leaf = await mintLeaf(signingCa(caPem.certPem, caPem.keyPem), { dnsNames: ['api.anthropic.com'], validityMs: 60_000, usage: 'both' });
    const x = new X509Certificate(leaf.certPem);
    expect(x.checkIssued(new X509Certificate(caPem.certPem))).toBe(true);
    expect(x.issuer).toBe('O=Example Corp\nCN=Example RSA CA');
    const text = openssl(['x509', '-noout', '-text', '-in', file(leaf.certPem)]);
    expect(text).toMatch(/Signature Algorithm: sha256WithRSAEncryption/);
    expect(text).toMatch(/TLS Web Server Authentication, TLS Web Client Authentication/);
    expect(openssl(['verify', '-CAfile', file(caPem.certPem), file(leaf.certPem)])).toMatch(/: OK/);
    expect(await handshake(leaf, caPem.certPem, 'api.anthropic.com')).toBe('ok');
  });

  it('never outlives its CA, and refuses no names or an unsupported CA key', async () => {
    const caPem = await createCA('short CA', 1);
    const ca = signingCa(caPem.certPem, caPem.keyPem);
    const leaf = await mintLeaf(ca, { dnsNames: ['api.openai.com'], validityMs: 30 * 86_400_000 });
    expect(leaf.notAfter.getTime()).toBe(Date.parse(new X509Certificate(caPem.certPem).validTo));
    await expect(mintLeaf(ca, { dnsNames: [], validityMs: 1000 })).rejects.toThrow(/at least one DNS name/);
    const ed = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    expect(() => signingCa(caPem.certPem, ed)).toThrow(/unsupported CA key type ed25519/);
  });

  it('writes a CSR that openssl verifies and the issuer reads: P-256 key, SANs, no CA request', async () => {
    const { csrPem, keyPem } = await createCsr(['api.openai.com', 'api.anthropic.com']);
    // -verify makes openssl exit non-zero (execFileSync throws) when the self-signature does not verify.
    const text = openssl(['req', '-noout', '-text', '-verify', '-in', file(csrPem)]);
    expect(text).toMatch(/Subject: CN\s?=\s?api\.openai\.com/);
    expect(text).toMatch(/DNS:api\.openai\.com, DNS:api\.anthropic\.com/);
    const facts = await readCsr(csrPem);
    expect(facts).toEqual({ signatureValid: true, keyAlgorithm: 'ECDSA P-256', dnsNames: ['api.openai.com', 'api.anthropic.com'], otherNames: [], requestsCa: false });
    // The key that stays with the proxy is the CSR's key.
    const pub = openssl(['req', '-noout', '-pubkey', '-in', file(csrPem)]);
    const fromKey = openssl(['pkey', '-pubout', '-in', file(keyPem)]);
    expect(pub).toBe(fromKey);
    await expect(createCsr([])).rejects.toThrow(/at least one DNS name/);
  });

  it('reads a validity window back to the second', async () => {
    const caPem = await createCA('validity CA');
    const ca = await loadCA(caPem.certPem, caPem.keyPem);
    const leaf = await mintLeaf({ certPem: ca.certPem, key: (await import('node:crypto')).KeyObject.from(ca.key) }, {
      dnsNames: ['x.example'],
      validityMs: 7_200_000,
      now: Date.UTC(2031, 0, 2, 3, 4, 5, 678),
    });
    expect(certificateValidity(leaf.certPem)).toEqual({ notBefore: new Date(Date.UTC(2031, 0, 2, 3, 3, 5)), notAfter: new Date(Date.UTC(2031, 0, 2, 5, 4, 5)) });
  });
});

describe('der', () => {
  it('encodes times as UTCTime through 2049 and GeneralizedTime from 2050', () => {
    expect(time(new Date(Date.UTC(2049, 11, 31, 23, 59, 59))).toString('latin1')).toBe('\x17\x0d491231235959Z');
    expect(time(new Date(Date.UTC(2050, 0, 1, 0, 0, 0))).toString('latin1')).toBe('\x18\x0f20500101000000Z');
  });

  it('encodes integers minimally and positive', () => {
    expect(integer(0).toString('hex')).toBe('020100');
    expect(integer(128).toString('hex')).toBe('02020080');
    expect(integer(2048).toString('hex')).toBe('02020800');
    expect(unsignedInteger(Buffer.from([0, 0, 0x7f])).toString('hex')).toBe('02017f');
    expect(unsignedInteger(Buffer.from([0xff, 1])).toString('hex')).toBe('020300ff01');
  });

  it('reads back long-form lengths and refuses truncated input', () => {
    const content = Buffer.alloc(300, 7);
    const encoded = Buffer.concat([Buffer.from([0x04, 0x82, 0x01, 0x2c]), content, Buffer.from([0x05, 0x00])]);
    const first = readElement(encoded);
    expect(first.tag).toBe(0x04);
    expect(first.content.equals(content)).toBe(true);
    expect(children(encoded).map((e) => e.tag)).toEqual([0x04, 0x05]);
    expect(() => readElement(encoded.subarray(0, 100))).toThrow(/truncated/);
  });
});
