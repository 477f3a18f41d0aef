import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { existsSync, unwatchFile, watchFile } from 'node:fs';
import { join } from 'node:path';
import { createSecureContext, type SecureContext } from 'node:tls';
import { CA_CERT_FILE, CA_CERT_FILE_ALT, CA_KEY_FILE, CA_KEY_FILE_ALT } from '../../../shared/constants.js';
import { UserError, errorMessage } from '../../../shared/errors.js';
import type { Logger } from '../../../shared/log.js';
import { loadPolicyFile } from '../../../shared/policy/load.js';
import type { EgressPolicy } from '../../../shared/policy/types.js';
import type { CertificateSource, PolicySource } from './types.js';

// Standalone mode (development, the demo, tests): a local CA in --ca-dir mints the leaf certificates, and the
// policy comes from a YAML file that is re-read when it changes.

type Leaf = typeof import('../../../shared/leaf.js');
type SigningCa = import('../../../shared/leaf.js').SigningCa;

/** Leaf lifetime; renewed in the background an hour before it ends, the old one serving meanwhile. */
const LEAF_VALIDITY_MS = 24 * 3_600_000;
const RENEW_BEFORE_MS = 3_600_000;
/** Distinct hosts kept; an app cycling through Azure resource names must not grow memory without end. */
const MAX_CACHED_HOSTS = 1_000;

interface CachedLeaf {
  context: SecureContext;
  renewAt: number;
  renewing?: boolean;
}

/**
 * Mints ECDSA P-256 leaves for AI hosts from a local CA, one per host, kept in memory. The CA files are read
 * and checked on `ready()`; leaves are written with node:crypto and a small DER writer (shared/leaf.ts).
 */
export class LocalCaCertificateSource implements CertificateSource {
  private ca?: Promise<SigningCa>;
  private pem?: string;
  private keyPem?: string;
  private readonly leaves = new Map<string, CachedLeaf>();
  private readonly pending = new Map<string, Promise<SecureContext>>();

  constructor(
    private readonly caDir: string,
    private readonly now: () => number = Date.now,
  ) {}

  async ready(): Promise<void> {
    if (this.pem !== undefined) return;
    // One convention with the control plane's --ca-dir: a kubernetes.io/tls Secret's tls.crt / tls.key (what
    // cert-manager writes); ca.crt / ca.key, the names this flag took first, are still read when those are absent.
    const tls = existsSync(join(this.caDir, CA_CERT_FILE)) || !existsSync(join(this.caDir, CA_CERT_FILE_ALT));
    const [crtName, keyName] = tls ? [CA_CERT_FILE, CA_KEY_FILE] : [CA_CERT_FILE_ALT, CA_KEY_FILE_ALT];
    const certFile = join(this.caDir, crtName);
    const keyFile = join(this.caDir, keyName);
    // One after the other, so a directory missing both names the certificate, every time.
    const certPem = await readCaFile(certFile);
    const keyPem = await readCaFile(keyFile);
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(certPem);
    } catch (err) {
      throw new UserError(`--ca-dir ${this.caDir}: ${crtName} is not a PEM certificate (${errorMessage(err)})`);
    }
    if (!cert.ca) throw new UserError(`--ca-dir ${this.caDir}: ${crtName} is not a CA certificate (basicConstraints CA:false)`);
    let key: ReturnType<typeof createPrivateKey>;
    try {
      key = createPrivateKey(keyPem);
    } catch (err) {
      throw new UserError(`--ca-dir ${this.caDir}: ${keyName} is not a PEM private key (${errorMessage(err)})`);
    }
    if (!cert.checkPrivateKey(key)) throw new UserError(`--ca-dir ${this.caDir}: ${keyName} does not belong to ${crtName}`);
    if (Date.parse(cert.validTo) <= this.now()) throw new UserError(`--ca-dir ${this.caDir}: ${crtName} expired on ${cert.validTo}`);
    this.pem = certPem;
    this.keyPem = keyPem;
  }

  /** The CA for signing, loaded on first use. */
  private loadCa(): Promise<SigningCa> {
    if (!this.ca) {
      if (this.pem === undefined || this.keyPem === undefined) throw new Error('certificate source used before ready()');
      const [certPem, keyPem] = [this.pem, this.keyPem];
      this.ca = import('../../../shared/leaf.js').then((leaf: Leaf) => leaf.signingCa(certPem, keyPem));
      this.ca.catch(() => {
        this.ca = undefined; // a later connection tries again
      });
    }
    return this.ca;
  }

  caPem(): string {
    if (this.pem === undefined) throw new Error('certificate source used before ready()');
    return this.pem;
  }

  /** Mints one throwaway leaf, so the first real host does not pay for loading and the JIT. */
  async warmUp(): Promise<void> {
    await this.mint('warmup.aigress.invalid');
  }

  contextFor(host: string): SecureContext | Promise<SecureContext> {
    const hit = this.leaves.get(host);
    if (hit) {
      if (!hit.renewing && this.now() >= hit.renewAt) {
        hit.renewing = true;
        this.mint(host).then(
          (ctx) => this.store(host, ctx),
          () => {
            hit.renewing = false; // try again on a later connection; the current leaf is still valid
          },
        );
      }
      return hit.context;
    }
    let p = this.pending.get(host);
    if (!p) {
      p = this.mint(host).then(
        (ctx) => {
          this.pending.delete(host);
          this.store(host, ctx);
          return ctx;
        },
        (err: unknown) => {
          this.pending.delete(host);
          throw err;
        },
      );
      this.pending.set(host, p);
    }
    return p;
  }

  private store(host: string, context: SecureContext): void {
    this.leaves.delete(host);
    if (this.leaves.size >= MAX_CACHED_HOSTS) {
      const oldest = this.leaves.keys().next().value;
      if (oldest !== undefined) this.leaves.delete(oldest);
    }
    this.leaves.set(host, { context, renewAt: this.now() + LEAF_VALIDITY_MS - RENEW_BEFORE_MS });
  }

  private async mint(host: string): Promise<SecureContext> {
    const [ca, { mintLeaf }] = await Promise.all([this.loadCa(), import('../../../shared/leaf.js')]);
    const leaf = await mintLeaf(ca, { dnsNames: [host], validityMs: LEAF_VALIDITY_MS });
    return createSecureContext({ key: leaf.keyPem, cert: leaf.certPem, minVersion: 'TLSv1.2' });
  }

  close(): void {
    this.leaves.clear();
  }
}

async function readCaFile(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new UserError(`--ca-dir: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`);
  }
}

/** How often the policy file's mtime is checked. Polling survives ConfigMap symlink swaps that fs.watch misses. */
const POLICY_POLL_MS = 2_000;

/** An EgressPolicy from a file; a changed file that fails validation is logged and the last good one kept. */
export class FilePolicySource implements PolicySource {
  private policy?: EgressPolicy;
  private readonly listeners: ((p: EgressPolicy) => void)[] = [];
  private watching = false;

  constructor(
    private readonly path: string,
    private readonly log?: Logger,
    private readonly pollMs = POLICY_POLL_MS,
  ) {}

  async ready(): Promise<EgressPolicy> {
    if (!this.policy) this.policy = await loadPolicyFile(this.path);
    if (!this.watching) {
      this.watching = true;
      watchFile(this.path, { interval: this.pollMs, persistent: false }, (cur, prev) => {
        if (cur.mtimeMs !== prev.mtimeMs || cur.size !== prev.size || cur.ino !== prev.ino) void this.reload();
      });
    }
    return this.policy;
  }

  current(): EgressPolicy {
    if (!this.policy) throw new Error('policy source used before ready()');
    return this.policy;
  }

  onChange(listener: (policy: EgressPolicy) => void): void {
    this.listeners.push(listener);
  }

  /** Re-reads the file now (the watcher calls this; tests may too). */
  async reload(): Promise<void> {
    try {
      const next = await loadPolicyFile(this.path);
      if (JSON.stringify(next) === JSON.stringify(this.policy)) return;
      this.policy = next;
      this.log?.info({ policy: next.metadata.name, file: this.path }, 'policy reloaded');
      for (const l of this.listeners) l(next);
    } catch (err) {
      this.log?.error({ file: this.path, err: errorMessage(err) }, 'policy file rejected; keeping the last good policy');
    }
  }

  close(): void {
    if (this.watching) unwatchFile(this.path);
    this.watching = false;
  }
}
