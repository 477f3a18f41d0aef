import 'reflect-metadata'; // before @peculiar/x509 (tsyringe needs it)
import { createPublicKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { CoreV1Api, V1Secret } from '@kubernetes/client-node';
import * as x509 from '@peculiar/x509';
import { UserError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import { createCA, loadCA, type CertificateAuthority } from '../shared/pki.js';
import { apiErrorMessage, apiStatus } from './kube.js';

// The control plane's CA: from the Secret `aigress-ca` in its own namespace (created by the first replica when
// bootstrapping is on), or from files mounted from a cert-manager Secret. The private key lives in that Secret
// and in this process's memory only: it is never logged, never written to a ConfigMap or pod spec, never served.

export const CA_SECRET_NAME = 'aigress-ca';

export type CaSource =
  | { kind: 'secret'; namespace: string; name: string; bootstrap: boolean }
  /** A directory with `tls.crt` and `tls.key`: a cert-manager Certificate (isCA: true) Secret, mounted. */
  | { kind: 'files'; dir: string };

export interface LoadedCa {
  ca: CertificateAuthority;
  /** Where it came from, for logs: `secret aigress-system/aigress-ca (created)`, `files /etc/aigress/ca`. */
  origin: string;
}

/**
 * Checks CA material before it is used: a certificate with CA rights, currently valid, whose public key is the
 * one of the private key. Returns a problem description, or undefined when it is fine.
 */
export function checkCaMaterial(certPem: string, keyPem: string, now = Date.now()): string | undefined {
  let cert: x509.X509Certificate;
  try {
    cert = new x509.X509Certificate(certPem);
  } catch {
    return 'tls.crt is not a PEM certificate';
  }
  const bc = cert.getExtension(x509.BasicConstraintsExtension);
  if (!bc?.ca) return `certificate "${cert.subject}" is not a CA (basicConstraints cA is not true)`;
  if (cert.notAfter.getTime() <= now) return `CA certificate "${cert.subject}" expired at ${cert.notAfter.toISOString()}`;
  if (cert.notBefore.getTime() > now + 5 * 60_000) return `CA certificate "${cert.subject}" is not valid before ${cert.notBefore.toISOString()}`;
  let keySpki: Buffer;
  try {
    keySpki = createPublicKey(keyPem).export({ format: 'der', type: 'spki' });
  } catch {
    return 'tls.key is not a PEM private key';
  }
  if (!keySpki.equals(Buffer.from(cert.publicKey.rawData))) return 'tls.key does not belong to the certificate in tls.crt';
  return undefined;
}

async function fromPem(certPem: string, keyPem: string, origin: string): Promise<LoadedCa> {
  const problem = checkCaMaterial(certPem, keyPem);
  if (problem) throw new UserError(`CA from ${origin}: ${problem}`);
  return { ca: await loadCA(certPem, keyPem), origin };
}

function secretPems(s: V1Secret, where: string): { certPem: string; keyPem: string } {
  const crt = s.data?.['tls.crt'];
  const key = s.data?.['tls.key'];
  if (!crt || !key) throw new UserError(`CA Secret ${where} must have data keys tls.crt and tls.key`);
  return { certPem: Buffer.from(crt, 'base64').toString('utf8'), keyPem: Buffer.from(key, 'base64').toString('utf8') };
}

async function readSecret(core: CoreV1Api, namespace: string, name: string): Promise<V1Secret | undefined> {
  try {
    return await core.readNamespacedSecret({ namespace, name });
  } catch (err) {
    if (apiStatus(err) === 404) return undefined;
    throw new Error(`reading Secret ${namespace}/${name}: ${apiErrorMessage(err)}`);
  }
}

/**
 * Loads the CA from its Secret, creating it when absent and bootstrapping is on. Create-if-absent: several
 * replicas may race; exactly one create succeeds, the others get 409 AlreadyExists and read the winner's.
 */
export async function loadCaFromSecret(
  core: CoreV1Api,
  src: { namespace: string; name: string; bootstrap: boolean },
  log: Logger,
): Promise<LoadedCa> {
  const where = `${src.namespace}/${src.name}`;
  const existing = await readSecret(core, src.namespace, src.name);
  if (existing) {
    const { certPem, keyPem } = secretPems(existing, where);
    return fromPem(certPem, keyPem, `secret ${where}`);
  }
  if (!src.bootstrap) {
    throw new UserError(`CA Secret ${where} not found and CA bootstrap is disabled (create it, use cert-manager, or enable bootstrap)`);
  }
  const fresh = await createCA('aigress CA');
  const body: V1Secret = {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: src.name, namespace: src.namespace, labels: { 'app.kubernetes.io/managed-by': 'aigress', 'app.kubernetes.io/component': 'ca' } },
    type: 'kubernetes.io/tls',
    data: { 'tls.crt': Buffer.from(fresh.certPem).toString('base64'), 'tls.key': Buffer.from(fresh.keyPem).toString('base64') },
  };
  try {
    await core.createNamespacedSecret({ namespace: src.namespace, body });
    const loaded = await fromPem(fresh.certPem, fresh.keyPem, `secret ${where} (created)`);
    log.info({ secret: where, subject: loaded.ca.cert.subject, notAfter: loaded.ca.cert.notAfter.toISOString() }, 'CA bootstrapped');
    return loaded;
  } catch (err) {
    if (apiStatus(err) !== 409) {
      if (err instanceof UserError) throw err;
      throw new Error(`creating Secret ${where}: ${apiErrorMessage(err)}`);
    }
  }
  // Another replica created it between our read and our create: theirs is the CA, ours is discarded.
  const winner = await readSecret(core, src.namespace, src.name);
  if (!winner) throw new Error(`Secret ${where} reported as existing but could not be read`);
  const { certPem, keyPem } = secretPems(winner, where);
  log.info({ secret: where }, 'CA created by another replica; using it');
  return fromPem(certPem, keyPem, `secret ${where}`);
}

export async function loadCaFromFiles(dir: string): Promise<LoadedCa> {
  const read = async (f: string): Promise<string> => {
    try {
      return await readFile(join(dir, f), 'utf8');
    } catch (err) {
      throw new UserError(`cannot read CA file ${join(dir, f)}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
  };
  return fromPem(await read('tls.crt'), await read('tls.key'), `files ${dir}`);
}

export async function loadCa(src: CaSource, core: CoreV1Api, log: Logger): Promise<LoadedCa> {
  return src.kind === 'files' ? loadCaFromFiles(src.dir) : loadCaFromSecret(core, src, log);
}
