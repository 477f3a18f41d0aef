import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CoreV1Api } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UserError } from '../../../shared/errors.js';
import { createCA, issueLeaf, loadCA } from '../../../shared/pki.js';
import { checkCaMaterial, loadCaFromFiles, loadCaFromSecret } from '../../../webhook/ca.js';
import { kubeClients, kubeConfigFor, type KubeClients } from '../../../webhook/kube.js';
import { FakeApiServer } from '../../support/fake-apiserver.js';
import { captureLogger } from '../../support/log.js';

let api: FakeApiServer;
let k: KubeClients;
const clients = (): KubeClients =>
  kubeClients(kubeConfigFor({ server: api.url, caPem: api.caPem, token: api.adminToken, tlsServerName: 'localhost' }));

beforeAll(async () => {
  api = await FakeApiServer.start();
  k = clients();
});
afterAll(async () => {
  await api.close();
});

const pemBody = (pem: string): string => pem.replace(/-----[A-Z ]+-----/g, '').replace(/\s/g, '');

/** A CoreV1Api whose secret reads all wait until `n` have been made: forces replicas to race past the read. */
function barrierOnRead(core: CoreV1Api, gate: { waiting: number; release?: () => void; open: Promise<void> }, n: number): CoreV1Api {
  return new Proxy(core, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown;
      if (prop !== 'readNamespacedSecret' || typeof v !== 'function') return v;
      return async (...args: unknown[]) => {
        const result = await (v as (...a: unknown[]) => Promise<unknown>).apply(target, args).catch((e: unknown) => ({ __err: e }));
        if (++gate.waiting === n) gate.release!();
        await gate.open;
        if (typeof result === 'object' && result !== null && '__err' in result) throw (result as { __err: unknown }).__err;
        return result;
      };
    },
  });
}

describe('CA from the aigress-ca Secret', () => {
  it('bootstraps when absent, then every later start loads the same CA', async () => {
    const { log, text } = captureLogger();
    const first = await loadCaFromSecret(k.core, { namespace: 'cp1', name: 'aigress-ca', bootstrap: true }, log);
    expect(first.origin).toBe('secret cp1/aigress-ca (created)');
    const secret = api.get('v1', 'secrets', 'cp1', 'aigress-ca')!;
    expect(secret.type).toBe('kubernetes.io/tls');
    const again = await loadCaFromSecret(k.core, { namespace: 'cp1', name: 'aigress-ca', bootstrap: false }, log);
    expect(again.ca.certPem).toBe(first.ca.certPem);
    // The key is in the Secret; it must not be in the log.
    const keyB64 = (secret.data as Record<string, string>)['tls.key']!;
    const keyPem = Buffer.from(keyB64, 'base64').toString();
    expect(text()).toContain('CA bootstrapped');
    expect(text()).not.toContain('PRIVATE KEY');
    expect(text()).not.toContain(pemBody(keyPem).slice(0, 40));
    expect(text()).not.toContain(keyB64.slice(0, 40));
  });

  it('two replicas racing to bootstrap end with one CA: one create wins, the loser reads the winner', async () => {
    let release!: () => void;
    const gate = { waiting: 0, open: new Promise<void>((r) => (release = r)), release: undefined as (() => void) | undefined };
    gate.release = release;
    const a = barrierOnRead(clients().core, gate, 2);
    const b = barrierOnRead(clients().core, gate, 2);
    const src = { namespace: 'race', name: 'aigress-ca', bootstrap: true };
    const before = api.requests.length;
    const [ra, rb] = await Promise.all([
      loadCaFromSecret(a, src, captureLogger().log),
      loadCaFromSecret(b, src, captureLogger().log),
    ]);
    const creates = api.requests.slice(before).filter((r) => r.method === 'POST' && r.path === '/api/v1/namespaces/race/secrets');
    expect(creates).toHaveLength(2); // both really tried
    expect(ra.ca.certPem).toBe(rb.ca.certPem);
    const stored = api.get('v1', 'secrets', 'race', 'aigress-ca')!;
    expect(Buffer.from((stored.data as Record<string, string>)['tls.crt']!, 'base64').toString()).toBe(ra.ca.certPem);
    expect([ra.origin, rb.origin].sort()).toEqual(['secret race/aigress-ca', 'secret race/aigress-ca (created)']);
    // Both can sign, and what one signs the other's CA certificate verifies: it is one CA.
    const leaf = await issueLeaf(rb.ca, { dnsNames: ['api.openai.com'] });
    const { X509Certificate } = await import('node:crypto');
    expect(new X509Certificate(leaf.certPem).verify(new X509Certificate(ra.ca.certPem).publicKey)).toBe(true);
  });

  it('refuses to start without the Secret when bootstrapping is off, naming it', async () => {
    const err: unknown = await loadCaFromSecret(k.core, { namespace: 'cp2', name: 'aigress-ca', bootstrap: false }, captureLogger().log).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toMatch(/CA Secret cp2\/aigress-ca not found and CA bootstrap is disabled/);
    expect(api.get('v1', 'secrets', 'cp2', 'aigress-ca')).toBeUndefined();
  });

  it('refuses a Secret whose key does not match its certificate, or whose certificate is not a CA', async () => {
    const ca1 = await createCA('one');
    const ca2 = await createCA('two');
    api.put('v1', 'secrets', {
      metadata: { name: 'aigress-ca', namespace: 'cp3' },
      type: 'kubernetes.io/tls',
      data: { 'tls.crt': Buffer.from(ca1.certPem).toString('base64'), 'tls.key': Buffer.from(ca2.keyPem).toString('base64') },
    });
    await expect(loadCaFromSecret(k.core, { namespace: 'cp3', name: 'aigress-ca', bootstrap: true }, captureLogger().log)).rejects.toThrow(
      /secret cp3\/aigress-ca: tls.key does not belong to the certificate/,
    );
    const leaf = await issueLeaf(await loadCA(ca1.certPem, ca1.keyPem), { dnsNames: ['x.example'] });
    expect(checkCaMaterial(leaf.certPem, leaf.keyPem)).toMatch(/is not a CA/);
    expect(checkCaMaterial(ca1.certPem, ca1.keyPem)).toBeUndefined();
    expect(checkCaMaterial(ca1.certPem, ca1.keyPem, Date.now() + 3651 * 86_400_000)).toMatch(/expired/);
    api.put('v1', 'secrets', { metadata: { name: 'aigress-ca', namespace: 'cp4' }, data: { 'tls.crt': Buffer.from(ca1.certPem).toString('base64') } });
    await expect(loadCaFromSecret(k.core, { namespace: 'cp4', name: 'aigress-ca', bootstrap: true }, captureLogger().log)).rejects.toThrow(
      /must have data keys tls.crt and tls.key/,
    );
  });
});

describe('CA from cert-manager files', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'aigress-ca-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('loads tls.crt/tls.key from the mounted directory and names a missing file', async () => {
    await expect(loadCaFromFiles(dir)).rejects.toThrow(new RegExp(`cannot read CA file ${dir}/tls.crt: ENOENT`));
    const ca = await createCA('cert-manager CA');
    await writeFile(join(dir, 'tls.crt'), ca.certPem);
    await writeFile(join(dir, 'tls.key'), ca.keyPem);
    const loaded = await loadCaFromFiles(dir);
    expect(loaded.ca.certPem).toBe(ca.certPem);
    expect(loaded.origin).toBe(`files ${dir}`);
  });
});
