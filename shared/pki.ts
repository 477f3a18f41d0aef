import 'reflect-metadata'; // @peculiar/x509 needs it loaded first (tsyringe)
import { createPrivateKey, KeyObject, randomBytes, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { mintLeaf, pem, type SigningCa } from './leaf.js';

export { certificateValidity, createCsr } from './leaf.js';

// Certificates for the proxy's TLS termination and for local/demo CAs. ECDSA P-256 throughout: small keys,
// fast handshakes, and what every TLS client in the app containers accepts.

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;
type Algorithm = webcrypto.Algorithm;
type EcdsaParams = webcrypto.EcdsaParams;
type EcKeyImportParams = webcrypto.EcKeyImportParams;
type EcKeyGenParams = webcrypto.EcKeyGenParams;

const crypto = webcrypto;
x509.cryptoProvider.set(crypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const EC: EcKeyImportParams & EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' };
const EC_SIGN: EcdsaParams = { name: 'ECDSA', hash: 'SHA-256' };
const RSA_SIGN = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };

export interface PemPair {
  certPem: string;
  keyPem: string;
}

export interface CertificateAuthority {
  certPem: string;
  cert: x509.X509Certificate;
  key: CryptoKey;
  signingAlgorithm: Algorithm | EcdsaParams;
}

const pemOf = (der: ArrayBuffer, label: string): string => pem(Buffer.from(der), label);

function serial(): string {
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f; // positive INTEGER
  return b.toString('hex');
}

async function exportKeyPem(key: CryptoKey): Promise<string> {
  return pemOf(await crypto.subtle.exportKey('pkcs8', key), 'PRIVATE KEY');
}

/** A new self-signed CA (ECDSA P-256), for standalone mode, tests and the demo. */
export async function createCA(commonName = 'aigress local CA', validityDays = 3650): Promise<PemPair> {
  const keys = (await crypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${commonName}, O=aigress`,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + validityDays * 86_400_000),
    keys,
    signingAlgorithm: EC_SIGN,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString('pem') + '\n', keyPem: await exportKeyPem(keys.privateKey) };
}

/** Loads a CA from PEM; the key may be EC P-256 or RSA (cert-manager issues either). */
export async function loadCA(certPem: string, keyPem: string): Promise<CertificateAuthority> {
  const cert = new x509.X509Certificate(certPem);
  const keyObject = createPrivateKey(keyPem);
  const der = keyObject.export({ format: 'der', type: 'pkcs8' });
  const pkcs8 = der.buffer.slice(der.byteOffset, der.byteOffset + der.byteLength) as ArrayBuffer;
  // The node:crypto KeyObject signs leaves (issueLeaf): keeping it here avoids KeyObject.from() on a
  // non-extractable CryptoKey, which Node 24 deprecates (DEP0204).
  const withSigner = (ca: CertificateAuthority): CertificateAuthority => (signers.set(ca, { certPem, key: keyObject }), ca);
  if (keyObject.asymmetricKeyType === 'ec') {
    const key = await crypto.subtle.importKey('pkcs8', pkcs8, EC, false, ['sign']);
    return withSigner({ certPem, cert, key, signingAlgorithm: EC_SIGN });
  }
  if (keyObject.asymmetricKeyType === 'rsa') {
    const key = await crypto.subtle.importKey('pkcs8', pkcs8, RSA_SIGN, false, ['sign']);
    return withSigner({ certPem, cert, key, signingAlgorithm: RSA_SIGN });
  }
  throw new Error(`unsupported CA key type ${keyObject.asymmetricKeyType ?? 'unknown'} (use EC P-256 or RSA)`);
}

export interface LeafOptions {
  dnsNames: string[];
  /** Lifetime; leaf certificates are short-lived by design. */
  validityMs?: number;
  /** Server auth (the proxy's TLS termination) unless said otherwise. */
  usage?: 'server' | 'client' | 'both';
  /** Issue time in ms since the epoch; defaults to now (tests move it to exercise renewal). */
  now?: number;
}

const signers = new WeakMap<CertificateAuthority, SigningCa>();

/**
 * Issues a leaf certificate with a fresh ECDSA P-256 key: CA:false, SANs = dnsNames, never past the CA's own
 * expiry. Written with node:crypto (shared/leaf.ts), the same code the proxy mints its leaves with.
 */
export async function issueLeaf(ca: CertificateAuthority, opts: LeafOptions): Promise<PemPair & { notAfter: Date }> {
  if (opts.dnsNames.length === 0) throw new Error('a leaf certificate needs at least one DNS name');
  let signer = signers.get(ca);
  if (!signer) {
    signer = { certPem: ca.certPem, key: KeyObject.from(ca.key) };
    signers.set(ca, signer);
  }
  return mintLeaf(signer, {
    dnsNames: opts.dnsNames,
    validityMs: opts.validityMs ?? 24 * 3_600_000,
    usage: opts.usage ?? 'server',
    ...(opts.now !== undefined && { now: opts.now }),
  });
}

// Certificate signing requests: in cluster mode the proxy generates its key and sends only a CSR, so no private
// key ever travels; the issuer reads the CSR without trusting it and signs only what it allows.

export interface CsrPair {
  csrPem: string;
  keyPem: string;
}

/** What an issuer needs to decide on a CSR, read from it without trusting any of it. */
export interface CsrFacts {
  signatureValid: boolean;
  /** `ECDSA P-256`, `ECDSA P-384`, `RSASSA-PKCS1-v1_5`, … */
  keyAlgorithm: string;
  dnsNames: string[];
  /** Subject alternative names other than DNS names, as `type:value` (ip:10.0.0.1, email:…, url:…). */
  otherNames: string[];
  /** The CSR asks for CA rights: basicConstraints cA=true, or key usage keyCertSign/cRLSign. */
  requestsCa: boolean;
}

/** Parses a PEM CSR; throws (with the parser's message) when it is not one. */
export async function readCsr(pem: string): Promise<CsrFacts> {
  const csr = new x509.Pkcs10CertificateRequest(pem);
  const alg = csr.publicKey.algorithm as Algorithm & { namedCurve?: string };
  const dnsNames: string[] = [];
  const otherNames: string[] = [];
  let requestsCa = false;
  for (const ext of csr.extensions) {
    if (ext instanceof x509.SubjectAlternativeNameExtension) {
      for (const n of ext.names.items) {
        if (n.type === 'dns') dnsNames.push(n.value);
        else otherNames.push(`${n.type}:${n.value}`);
      }
    } else if (ext instanceof x509.BasicConstraintsExtension) {
      if (ext.ca) requestsCa = true;
    } else if (ext instanceof x509.KeyUsagesExtension) {
      if (ext.usages & (x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign)) requestsCa = true;
    }
  }
  return {
    signatureValid: await csr.verify(),
    keyAlgorithm: alg.namedCurve ? `${alg.name} ${alg.namedCurve}` : alg.name,
    dnsNames,
    otherNames,
    requestsCa,
  };
}

export interface SignedLeaf {
  certPem: string;
  serial: string;
  notBefore: Date;
  notAfter: Date;
}

/**
 * Signs the CSR's public key into a server-auth leaf for `dnsNames` (which the caller has already checked):
 * CA:false, digitalSignature only, never past the CA's own expiry. Nothing but the key is taken from the CSR.
 */
export async function signCsr(
  ca: CertificateAuthority,
  csrPem: string,
  opts: { dnsNames: string[]; validityMs: number; now?: number },
): Promise<SignedLeaf> {
  if (opts.dnsNames.length === 0) throw new Error('a leaf certificate needs at least one DNS name');
  const csr = new x509.Pkcs10CertificateRequest(csrPem);
  const now = opts.now ?? Date.now();
  const notBefore = new Date(now - 60_000); // tolerate small clock skew between pod and issuer
  const notAfter = new Date(Math.min(now + opts.validityMs, ca.cert.notAfter.getTime()));
  const serialNumber = serial();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber,
    subject: `CN=${opts.dnsNames[0]}`,
    issuer: ca.cert.subject,
    notBefore,
    notAfter,
    publicKey: csr.publicKey,
    signingKey: ca.key,
    signingAlgorithm: ca.signingAlgorithm,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
      new x509.SubjectAlternativeNameExtension(opts.dnsNames.map((value) => ({ type: 'dns' as const, value }))),
      await x509.AuthorityKeyIdentifierExtension.create(ca.cert, false),
    ],
  });
  return { certPem: cert.toString('pem') + '\n', serial: serialNumber, notBefore, notAfter };
}
