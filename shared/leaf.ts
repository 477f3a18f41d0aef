import { createHash, createPrivateKey, generateKeyPair, randomBytes, sign, X509Certificate, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { TRUE, bits, children, explicit, implicit, integer, NULL, octets, oid, readElement, seq, set, time, unsignedInteger, utf8 } from './der.js';

// Leaf certificates and CSRs with node:crypto and the small DER writer alone. The proxy mints its TLS leaves
// (standalone mode) and its CSRs (cluster mode) here, so it never loads @peculiar/x509; the control plane's
// CA and issuer keep using that library (shared/pki.ts), which also reads back what this file writes in tests.

const generateEcKeyPair = promisify(generateKeyPair);

const OID = {
  ecPublicKey: '1.2.840.10045.2.1',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  sha256WithRsa: '1.2.840.113549.1.1.11',
  commonName: '2.5.4.3',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  extKeyUsage: '2.5.29.37',
  authorityKeyIdentifier: '2.5.29.35',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  extensionRequest: '1.2.840.113549.1.9.14',
} as const;

/** A CA that signs with node:crypto: its certificate (PEM) and private key (EC P-256 or RSA). */
export interface SigningCa {
  certPem: string;
  key: KeyObject;
}

export interface MintOptions {
  dnsNames: readonly string[];
  /** Lifetime in ms (never past the CA's own expiry). */
  validityMs: number;
  usage?: 'server' | 'client' | 'both';
  /** Issue time in ms since the epoch; defaults to now. */
  now?: number;
}

export interface MintedLeaf {
  certPem: string;
  keyPem: string;
  notAfter: Date;
}

/** What a leaf's issuer fields are copied from: the CA's subject (exact bytes) and its key identifier. */
interface IssuerFacts {
  subject: Buffer;
  keyId: Buffer;
  notAfter: number;
}

const issuerCache = new WeakMap<SigningCa, IssuerFacts>();

/**
 * Reads the CA certificate's subject Name (as encoded, so that chain building matches it byte for byte) and
 * its subject key identifier (or, lacking one, the SHA-1 of its public key, RFC 5280 §4.2.1.2 method 1).
 */
function issuerFacts(ca: SigningCa): IssuerFacts {
  const hit = issuerCache.get(ca);
  if (hit) return hit;
  const x = new X509Certificate(ca.certPem);
  const tbs = children(readElement(x.raw).content)[0];
  if (!tbs || tbs.tag !== 0x30) throw new Error('CA certificate: no TBSCertificate');
  const fields = children(tbs.content);
  const at = fields[0]?.tag === 0xa0 ? 1 : 0; // [0] version is optional (v1)
  const subject = fields[at + 4];
  const spki = fields[at + 5];
  if (subject?.tag !== 0x30 || spki?.tag !== 0x30) throw new Error('CA certificate: malformed TBSCertificate');
  let keyId: Buffer | undefined;
  const extensions = fields.find((f) => f.tag === 0xa3);
  if (extensions) {
    for (const ext of children(readElement(extensions.content).content)) {
      const [id, ...rest] = children(ext.content);
      if (id?.raw.equals(oid(OID.subjectKeyIdentifier))) {
        const value = rest.at(-1);
        if (value) keyId = readElement(value.content).content;
      }
    }
  }
  if (!keyId) {
    const publicKeyBits = children(spki.content)[1];
    if (!publicKeyBits) throw new Error('CA certificate: malformed public key');
    keyId = createHash('sha1').update(publicKeyBits.content.subarray(1)).digest();
  }
  const facts = { subject: Buffer.from(subject.raw), keyId: Buffer.from(keyId), notAfter: Date.parse(x.validTo) };
  issuerCache.set(ca, facts);
  return facts;
}

function signatureAlgorithm(key: KeyObject): Buffer {
  if (key.asymmetricKeyType === 'ec') return seq([oid(OID.ecdsaWithSha256)]);
  if (key.asymmetricKeyType === 'rsa') return seq([oid(OID.sha256WithRsa), NULL]);
  throw new Error(`unsupported CA key type ${key.asymmetricKeyType ?? 'unknown'} (use EC P-256 or RSA)`);
}

/** Signs `tbs` (SHA-256) and wraps it as a certificate or CSR: SEQUENCE { tbs, algorithm, BIT STRING }. */
function signed(tbs: Buffer, key: KeyObject): Buffer {
  const algorithm = signatureAlgorithm(key);
  const signature = key.asymmetricKeyType === 'ec' ? sign('sha256', tbs, { key, dsaEncoding: 'der' }) : sign('sha256', tbs, key);
  return seq([tbs, algorithm, bits(signature)]);
}

const commonNameOnly = (cn: string): Buffer => seq([set([seq([oid(OID.commonName), utf8(cn)])])]);

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return seq(critical ? [oid(id), TRUE, octets(value)] : [oid(id), octets(value)]);
}

const subjectAltName = (dnsNames: readonly string[]): Buffer =>
  extension(OID.subjectAltName, false, seq(dnsNames.map((n) => implicit(2, Buffer.from(n, 'ascii')))));

/** 16 random bytes, positive and without a leading zero byte, so the DER integer is always 16 bytes long. */
function serialBytes(): Buffer {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x01;
  return b;
}

/** DER → PEM with 64-character lines. */
export function pem(der: Buffer, label: string): string {
  const b64 = der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

async function newP256(): Promise<{ spki: Buffer; keyPem: string; privateKey: KeyObject }> {
  const { publicKey, privateKey } = await generateEcKeyPair('ec', { namedCurve: 'P-256' });
  return {
    spki: publicKey.export({ type: 'spki', format: 'der' }),
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    privateKey,
  };
}

/**
 * A leaf with a fresh ECDSA P-256 key, signed by `ca`: CA:false, digitalSignature only, the requested extended
 * key usage, SANs = dnsNames, CN = the first name, authority key identifier = the CA's.
 */
export async function mintLeaf(ca: SigningCa, opts: MintOptions): Promise<MintedLeaf> {
  if (opts.dnsNames.length === 0) throw new Error('a leaf certificate needs at least one DNS name');
  const issuer = issuerFacts(ca);
  const now = opts.now ?? Date.now();
  const notBefore = new Date(now - 60_000); // tolerate small clock skew between pod and issuer
  const notAfter = new Date(Math.min(now + opts.validityMs, issuer.notAfter));
  const usage = opts.usage ?? 'server';
  const eku: Buffer[] = [];
  if (usage !== 'client') eku.push(oid(OID.serverAuth));
  if (usage !== 'server') eku.push(oid(OID.clientAuth));
  const leafKey = await newP256();
  const tbs = seq([
    explicit(0, integer(2)), // v3
    unsignedInteger(serialBytes()),
    signatureAlgorithm(ca.key),
    issuer.subject,
    seq([time(notBefore), time(notAfter)]),
    commonNameOnly(opts.dnsNames[0]!),
    leafKey.spki,
    explicit(
      3,
      seq([
        extension(OID.basicConstraints, true, seq([])),
        extension(OID.keyUsage, true, Buffer.from([0x03, 0x02, 0x07, 0x80])), // digitalSignature
        extension(OID.extKeyUsage, false, seq(eku)),
        subjectAltName(opts.dnsNames),
        extension(OID.authorityKeyIdentifier, false, seq([implicit(0, issuer.keyId)])),
      ]),
    ),
  ]);
  return { certPem: pem(signed(tbs, ca.key), 'CERTIFICATE'), keyPem: leafKey.keyPem, notAfter };
}

/** A CA for `mintLeaf` from PEM files; the key may be EC P-256 or RSA. */
export function signingCa(certPem: string, keyPem: string): SigningCa {
  const ca = { certPem, key: createPrivateKey(keyPem) };
  signatureAlgorithm(ca.key); // refuse unsupported key types now, not on the first mint
  issuerFacts(ca);
  return ca;
}

/**
 * A PKCS#10 CSR for `dnsNames` with a fresh ECDSA P-256 key (CN = the first name, SANs in an extension
 * request). The key stays with the caller; only the CSR travels.
 */
export async function createCsr(dnsNames: readonly string[]): Promise<{ csrPem: string; keyPem: string }> {
  if (dnsNames.length === 0) throw new Error('a CSR needs at least one DNS name');
  const k = await newP256();
  const info = seq([
    integer(0),
    commonNameOnly(dnsNames[0]!),
    k.spki,
    explicit(0, seq([oid(OID.extensionRequest), set([seq([subjectAltName(dnsNames)])])])),
  ]);
  return { csrPem: pem(signed(info, k.privateKey), 'CERTIFICATE REQUEST'), keyPem: k.keyPem };
}

/** Validity window of a PEM certificate (the first one in the text). */
export function certificateValidity(certPem: string): { notBefore: Date; notAfter: Date } {
  const x = new X509Certificate(certPem);
  return { notBefore: new Date(x.validFrom), notAfter: new Date(x.validTo) };
}
