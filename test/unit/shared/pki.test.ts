import { X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createCA, issueLeaf, loadCA } from '../../../shared/pki.js';
import { handshake } from '../../support/tls-handshake.js';


describe('pki', () => {
  it('issues a short-lived ECDSA leaf that a TLS client verifies for its host only', async () => {
    const caPem = await createCA('test CA');
    const ca = await loadCA(caPem.certPem, caPem.keyPem);
    const leaf = await issueLeaf(ca, { dnsNames: ['api.openai.com'], validityMs: 3_600_000 });
    const x = new X509Certificate(leaf.certPem);
    expect(x.ca).toBe(false);
    expect(x.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(x.subjectAltName).toBe('DNS:api.openai.com');
    expect(x.checkIssued(new X509Certificate(caPem.certPem))).toBe(true);
    const lifetime = Date.parse(x.validTo) - Date.now();
    expect(lifetime).toBeLessThanOrEqual(3_600_000);
    expect(lifetime).toBeGreaterThan(3_500_000);
    expect(await handshake(leaf, caPem.certPem, 'api.openai.com')).toBe('ok');
    expect(await handshake(leaf, caPem.certPem, 'api.anthropic.com')).toBe('ERR_TLS_CERT_ALTNAME_INVALID');
    const other = await createCA('other CA');
    expect(await handshake(leaf, other.certPem, 'api.openai.com')).toBe('UNABLE_TO_VERIFY_LEAF_SIGNATURE');
  });

  it('marks the CA as a CA and refuses a leaf without names', async () => {
    const caPem = await createCA();
    expect(new X509Certificate(caPem.certPem).ca).toBe(true);
    const ca = await loadCA(caPem.certPem, caPem.keyPem);
    await expect(issueLeaf(ca, { dnsNames: [] })).rejects.toThrow(/at least one DNS name/);
  });
});
