import { X509Certificate, createHash, createHmac, hash, randomBytes } from 'node:crypto';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { rootCertificates } from 'node:tls';
import { CA_BUNDLE_FILE, JAVA_TRUSTSTORE_FILE, JAVA_TRUSTSTORE_PASSWORD } from '../../shared/constants.js';
import { NULL, bmp, explicit, integer, octets, oid, seq, set } from '../../shared/der.js';
import { UserError } from '../../shared/errors.js';

// The trust material apps get through the shared emptyDir: bundle.pem (for OpenSSL, Go, Python, Node, curl…)
// and truststore.p12 (for Java, whose trustStore property replaces its own cacerts: so the public roots go in
// too, or every non-AI HTTPS call of a Java app would break).

/** PEM text of the bundle: Node's public roots, the operator's extra roots (--extra-ca-file), then the aigress CA. */
export function bundlePem(caPem: string, roots: readonly string[] = rootCertificates, extra: readonly string[] = []): string {
  const parts = [...roots, ...extra].map((r) => (r.endsWith('\n') ? r : `${r}\n`));
  parts.push(caPem.endsWith('\n') ? caPem : `${caPem}\n`);
  return parts.join('');
}

/**
 * The certificates of an --extra-ca-file (PEM, one or more): each checked to be a certificate, so a broken
 * ConfigMap is refused with its reason instead of producing a bundle that OpenSSL would choke on. Pure.
 */
export function parseExtraRoots(text: string, source: string): string[] {
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new UserError(`--extra-ca-file ${source}: no PEM certificate in it`);
  blocks.forEach((pem, i) => {
    try {
      new X509Certificate(pem);
    } catch (err) {
      throw new UserError(`--extra-ca-file ${source}: certificate ${i + 1} is not valid (${err instanceof Error ? err.message : String(err)})`);
    }
  });
  return blocks.map((b) => `${b}\n`);
}

const OID = {
  data: '1.2.840.113549.1.7.1',
  certBag: '1.2.840.113549.1.12.10.1.3',
  x509Certificate: '1.2.840.113549.1.9.22.1',
  friendlyName: '1.2.840.113549.1.9.20',
  sha1: '1.3.14.3.2.26',
  // Java reads a certificate-only entry as a trusted certificate only when its bag carries this attribute
  // (Oracle's TrustedKeyUsage); its value lists the purposes trusted for, here anyExtendedKeyUsage.
  oracleTrustedKeyUsage: '2.16.840.1.113894.746875.1.1',
  anyExtendedKeyUsage: '2.5.29.37.0',
} as const;

const MAC_ITERATIONS = 2048;

// The DER encoders (shared/der.ts) work on Buffers rather than node-forge's string-based asn1: ~150 roots
// encode in about a millisecond instead of ~70 ms, and forge (~30 ms to load, ~10 MiB) stays out of a process
// that starts in every pod. The unit test reads the result back with forge, openssl and keytool.

const explicit0 = (inner: Buffer): Buffer => explicit(0, inner);

/** RFC 7292 appendix B.2 with SHA-1, for the MAC key (ID 3); 20 bytes need a single round. */
function pkcs12MacKey(password: string, salt: Buffer, iterations: number): Buffer {
  const v = 64;
  const fill = (src: Buffer): Buffer => {
    if (src.length === 0) return src;
    const out = Buffer.alloc(v * Math.ceil(src.length / v));
    for (let i = 0; i < out.length; i++) out[i] = src[i % src.length]!;
    return out;
  };
  const pw = Buffer.from(`${password}\0`, 'utf16le').swap16(); // BMPString with its two-byte terminator
  let a = createHash('sha1').update(Buffer.alloc(v, 3)).update(fill(salt)).update(fill(pw)).digest();
  for (let i = 1; i < iterations; i++) a = hash('sha1', a, 'buffer'); // one-shot: no Hash object per round
  return a;
}

export interface TrustedCert {
  /** Alias keytool shows for the entry. */
  alias: string;
  /** DER bytes of the certificate. */
  der: Buffer;
}

let fixed: { certBag: Buffer; x509Certificate: Buffer; friendlyName: Buffer; trusted: Buffer } | undefined;

function certBag(cert: TrustedCert): Buffer {
  fixed ??= {
    certBag: oid(OID.certBag),
    x509Certificate: oid(OID.x509Certificate),
    friendlyName: oid(OID.friendlyName),
    trusted: seq([oid(OID.oracleTrustedKeyUsage), set([oid(OID.anyExtendedKeyUsage)])]),
  };
  return seq([
    fixed.certBag,
    explicit0(seq([fixed.x509Certificate, explicit0(octets(cert.der))])),
    set([seq([fixed.friendlyName, set([bmp(cert.alias)])]), fixed.trusted]),
  ]);
}

/**
 * A PKCS#12 trust store of certificate-only entries, MAC'd with `password` (HMAC-SHA1, what keytool and
 * OpenSSL read by default). The certificates are not encrypted: they are public, and the password only
 * satisfies tools that insist on one.
 */
export function trustStoreP12(certs: readonly TrustedCert[], password: string): Buffer {
  const safeContents = seq(certs.map(certBag));
  const authSafe = seq([seq([oid(OID.data), explicit0(octets(safeContents))])]);
  const salt = randomBytes(8);
  const mac = createHmac('sha1', pkcs12MacKey(password, salt, MAC_ITERATIONS)).update(authSafe).digest();
  return seq([
    integer(3),
    seq([oid(OID.data), explicit0(octets(authSafe))]),
    seq([seq([seq([oid(OID.sha1), NULL]), octets(mac)]), octets(salt), integer(MAC_ITERATIONS)]),
  ]);
}

function pemToDer(pem: string): Buffer {
  const body = pem.replace(/-----(BEGIN|END) CERTIFICATE-----/g, '').replace(/\s+/g, '');
  return Buffer.from(body, 'base64');
}

export const AIGRESS_CA_ALIAS = 'aigress-ca';

/** The aigress CA first, then the public roots by position (naming them by subject would parse each: ~30 ms), then the extra roots. */
export function trustStoreEntries(caPem: string, roots: readonly string[] = rootCertificates, extra: readonly string[] = []): TrustedCert[] {
  const entries: TrustedCert[] = [{ alias: AIGRESS_CA_ALIAS, der: pemToDer(caPem) }];
  roots.forEach((pem, i) => entries.push({ alias: `public-root-${i + 1}`, der: pemToDer(pem) }));
  extra.forEach((pem, i) => entries.push({ alias: `extra-root-${i + 1}`, der: pemToDer(pem) }));
  return entries;
}

async function writeAtomically(path: string, data: string | Buffer): Promise<void> {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(tmp, data, { mode: 0o644 });
  await rename(tmp, path); // readers see the old file or the new one, never half of one
}

export interface BundleFiles {
  bundlePem: string;
  trustStore: string;
}

/** Writes bundle.pem and truststore.p12 into `dir` (created if missing). */
export async function writeTrustBundle(dir: string, caPem: string, extra: readonly string[] = []): Promise<BundleFiles> {
  const files = { bundlePem: join(dir, CA_BUNDLE_FILE), trustStore: join(dir, JAVA_TRUSTSTORE_FILE) };
  try {
    await mkdir(dir, { recursive: true });
    await writeAtomically(files.bundlePem, bundlePem(caPem, rootCertificates, extra));
    await writeAtomically(files.trustStore, trustStoreP12(trustStoreEntries(caPem, rootCertificates, extra), JAVA_TRUSTSTORE_PASSWORD));
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new UserError(`--bundle-dir ${dir}: cannot write the CA bundle: ${e.code ?? e.message}`);
  }
  return files;
}
