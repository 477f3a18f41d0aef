import { execFileSync, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rootCertificates } from 'node:tls';
import forge from 'node-forge';
import { beforeAll, describe, expect, it } from 'vitest';
import { createCA } from '../../../shared/pki.js';
import { AIGRESS_CA_ALIAS, bundlePem, writeTrustBundle } from '../../../sidecar/proxy/bundle.js';

const hasKeytool = spawnSync('keytool', ['-help'], { stdio: 'ignore' }).error === undefined;

function certsIn(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
}

describe('trust bundle', () => {
  let caPem: string;
  let dir: string;
  let files: { bundlePem: string; trustStore: string };

  beforeAll(async () => {
    caPem = (await createCA('aigress bundle test CA')).certPem;
    dir = join(mkdtempSync(join(tmpdir(), 'aigress-bundle-')), 'nested', 'ca');
    files = await writeTrustBundle(dir, caPem);
  });

  it('bundle.pem holds every public root and the aigress CA, each parseable', () => {
    const pem = readFileSync(files.bundlePem, 'utf8');
    const certs = certsIn(pem);
    expect(certs.length).toBe(rootCertificates.length + 1);
    expect(certs.at(-1)!.trim()).toBe(caPem.trim());
    for (const c of certs) expect(() => new X509Certificate(c)).not.toThrow();
    expect(new X509Certificate(certs.at(-1)!).subject).toContain('CN=aigress bundle test CA');
  });

  it('writes atomically: no temp files left behind', () => {
    expect(readdirSync(dir).sort()).toEqual(['bundle.pem', 'truststore.p12']);
  });

  it('bundlePem keeps one certificate per root even without trailing newlines', () => {
    const text = bundlePem('CA\n', ['A', 'B\n']);
    expect(text).toBe('A\nB\nCA\n');
  });

  it('openssl reads the trust store with password changeit and finds every certificate', () => {
    const r = spawnSync('openssl', ['pkcs12', '-in', files.trustStore, '-passin', 'pass:changeit', '-nokeys'], { encoding: 'utf8' });
    if (r.error) {
      console.log('skipped: openssl not installed');
      return;
    }
    expect(r.status, r.stderr).toBe(0);
    expect(certsIn(r.stdout).length).toBe(rootCertificates.length + 1);
    expect(r.stdout).toContain(`friendlyName: ${AIGRESS_CA_ALIAS}`);
    // Oracle's TrustedKeyUsage attribute on every bag (openssl prints it by OID): what makes Java trust them.
    expect(r.stdout.split('2.16.840.1.113894.746875.1.1').length - 1).toBe(rootCertificates.length + 1);
    const wrong = spawnSync('openssl', ['pkcs12', '-in', files.trustStore, '-passin', 'pass:wrong', '-nokeys'], { encoding: 'utf8' });
    expect(wrong.status).not.toBe(0); // the MAC is real
  });

  it('node-forge reads it back: the MAC verifies with changeit and the bags carry their aliases', () => {
    const der = readFileSync(files.trustStore);
    const p12 = forge.pkcs12.pkcs12FromAsn1(forge.asn1.fromDer(der.toString('binary')), 'changeit');
    const bags = p12.getBags({ bagType: forge.pki.oids.certBag! })[forge.pki.oids.certBag!]!;
    expect(bags.length).toBe(rootCertificates.length + 1);
    expect(bags[0]!.attributes.friendlyName).toEqual([AIGRESS_CA_ALIAS]);
    expect(bags.map((b) => b.attributes.friendlyName![0]).filter((a) => a.startsWith('public-root-')).length).toBe(rootCertificates.length);
    expect(() => forge.pkcs12.pkcs12FromAsn1(forge.asn1.fromDer(der.toString('binary')), 'wrong')).toThrow(/MAC/);
  });

  it.skipIf(!hasKeytool)('keytool lists the aigress CA and the public roots as trustedCertEntry', () => {
    const out = execFileSync('keytool', ['-list', '-keystore', files.trustStore, '-storepass', 'changeit', '-storetype', 'PKCS12'], {
      encoding: 'utf8',
    });
    expect(out).toMatch(new RegExp(`^${AIGRESS_CA_ALIAS}, .*trustedCertEntry`, 'm'));
    const trusted = out.split('\n').filter((l) => l.includes('trustedCertEntry'));
    expect(trusted.length).toBe(rootCertificates.length + 1);
    expect(out).toContain(`Your keystore contains ${rootCertificates.length + 1} entries`);
  });
  if (!hasKeytool) console.log('keytool test skipped: keytool (Java) is not installed on this machine');
});

describe('extra roots (--extra-ca-file)', () => {
  it('keeps each PEM certificate, refuses a file without one or with a broken one, naming the file', async () => {
    const { parseExtraRoots, bundlePem, trustStoreEntries } = await import('../../../sidecar/proxy/bundle.js');
    const { createCA } = await import('../../../shared/pki.js');
    const a = await createCA('extra A', 1);
    const b = await createCA('extra B', 1);
    const roots = parseExtraRoots(`# corp\n${a.certPem}\n${b.certPem}`, 'corp.pem');
    expect(roots).toHaveLength(2);
    const pem = bundlePem('-----BEGIN CERTIFICATE-----\nAIGRESS\n-----END CERTIFICATE-----\n', [], roots);
    expect(pem.indexOf('extra') === -1 && pem.includes(roots[1]!.trim())).toBe(true);
    expect(trustStoreEntries(a.certPem, [], roots).map((e) => e.alias)).toEqual(['aigress-ca', 'extra-root-1', 'extra-root-2']);
    expect(() => parseExtraRoots('nothing here', 'corp.pem')).toThrow('--extra-ca-file corp.pem: no PEM certificate in it');
    expect(() => parseExtraRoots('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----', 'corp.pem')).toThrow(/certificate 1 is not valid/);
  });
});
