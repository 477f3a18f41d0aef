import 'reflect-metadata'; // @peculiar/x509 needs it loaded first (tsyringe)
import { createPrivateKey, randomBytes, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

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

function toPem(der: ArrayBuffer, label: string): string {
  const b64 = Buffer.from(der).toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

function serial(): string {
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f; // positive INTEGER
  return b.toString('hex');
}

async function exportKeyPem(key: CryptoKey): Promise<string> {
  return toPem(await crypto.subtle.exportKey('pkcs8', key), 'PRIVATE KEY');
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
  if (keyObject.asymmetricKeyType === 'ec') {
    const key = await crypto.subtle.importKey('pkcs8', pkcs8, EC, false, ['sign']);
    return { certPem, cert, key, signingAlgorithm: EC_SIGN };
  }
  if (keyObject.asymmetricKeyType === 'rsa') {
    const key = await crypto.subtle.importKey('pkcs8', pkcs8, RSA_SIGN, false, ['sign']);
    return { certPem, cert, key, signingAlgorithm: RSA_SIGN };
  }
  throw new Error(`unsupported CA key type ${keyObject.asymmetricKeyType ?? 'unknown'} (use EC P-256 or RSA)`);
}

export interface LeafOptions {
  dnsNames: string[];
  /** Lifetime; leaf certificates are short-lived by design. */
  validityMs?: number;
  /** Server auth (the proxy's TLS termination) unless said otherwise. */
  usage?: 'server' | 'client' | 'both';
}

/** Issues a leaf certificate with a fresh ECDSA P-256 key: CA:false, SANs = dnsNames. */
export async function issueLeaf(ca: CertificateAuthority, opts: LeafOptions): Promise<PemPair & { notAfter: Date }> {
  if (opts.dnsNames.length === 0) throw new Error('a leaf certificate needs at least one DNS name');
  const keys = (await crypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
  const now = Date.now();
  const notAfter = new Date(now + (opts.validityMs ?? 24 * 3_600_000));
  const usage = opts.usage ?? 'server';
  const eku: string[] = [];
  if (usage !== 'client') eku.push(x509.ExtendedKeyUsage.serverAuth);
  if (usage !== 'server') eku.push(x509.ExtendedKeyUsage.clientAuth);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${opts.dnsNames[0]}`,
    issuer: ca.cert.subject,
    notBefore: new Date(now - 60_000), // tolerate small clock skew between pod and issuer
    notAfter,
    publicKey: keys.publicKey,
    signingKey: ca.key,
    signingAlgorithm: ca.signingAlgorithm,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension(eku, false),
      new x509.SubjectAlternativeNameExtension(opts.dnsNames.map((value) => ({ type: 'dns' as const, value }))),
      await x509.AuthorityKeyIdentifierExtension.create(ca.cert, false),
    ],
  });
  return { certPem: cert.toString('pem') + '\n', keyPem: await exportKeyPem(keys.privateKey), notAfter };
}
