import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createSecureContext, type SecureContext } from 'node:tls';
import { Counter, Gauge, Registry } from 'prom-client';
import { Agent, request } from 'undici';
import { CA_BUNDLE_DIR } from '../../../shared/constants.js';
import { UserError, errorMessage } from '../../../shared/errors.js';
import type { Logger } from '../../../shared/log.js';
import type { EgressPolicy } from '../../../shared/policy/types.js';
import { formatIssues, validatePolicy } from '../../../shared/policy/validate.js';
import { backoffDelay, Renewer, systemClock, type Clock, type Timer, type Validity } from '../../../shared/renewal.js';
// The host table is shared with the issuer; the proxy asks for exactly what the issuer will sign.
import { certificateNames, namesCover } from '../../../shared/certificate-names.js';
import type { CertificateSource, PolicySource } from './types.js';

// Cluster mode: the proxy's certificates come from the control plane's issuer (a CSR: the key is generated
// here and never leaves the pod) and its policy from the control plane's long-polled policy endpoint. Both
// authenticate with the pod's projected ServiceAccount token, re-read on each request (the kubelet rotates it).
// Failures never take away what works: the current certificate keeps serving while renewal retries, and the
// last good policy (kept on disk for container restarts) keeps being enforced while the control plane is away.

/** Env var the webhook sets on the proxy container: PEM of the CA that signed the control plane's certificate. */
export const CONTROL_PLANE_CA_ENV = 'AIGRESS_CONTROL_PLANE_CA';
/** The last good policy, next to the CA bundle in the pod's emptyDir. */
export const POLICY_STATE_FILE = '.aigress-policy.json';

export interface ClusterOptions {
  /** Base URL of the control plane, e.g. https://aigress.aigress-system.svc:8443. */
  controlPlane: URL;
  /** Projected ServiceAccount token (audience aigress). */
  tokenFile: string;
  log: Logger;
  /** CA that signed the control plane's serving certificate; default from $AIGRESS_CONTROL_PLANE_CA. */
  caPem?: string;
  /** Where the last good policy is kept (an emptyDir that outlives container restarts); default the bundle dir. */
  stateDir?: string;
  /** Metrics go here; the proxy's registry when given. */
  registry?: Registry;
  clock?: Clock;
  /** How long one policy long poll waits at the control plane. */
  longPollSeconds?: number;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
}

interface IssueAnswer {
  certificate: string;
  ca: string;
  serial: string;
  notBefore: string;
  notAfter: string;
}

/** A refusal or failure from the control plane, with its status and (when it sent one) reason. */
export class ControlPlaneError extends Error {
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
    this.name = 'ControlPlaneError';
  }
}

/** The two calls the proxy makes, over TLS verified against the aigress CA. */
export class ControlPlaneClient {
  private readonly agent: Agent;

  constructor(
    private readonly base: URL,
    caPem: string,
    private readonly tokenFile: string,
    private readonly longPollSeconds: number,
  ) {
    // Long polls hold a request open for longPollSeconds: the timeouts must be longer.
    const timeout = (longPollSeconds + 15) * 1000;
    this.agent = new Agent({ connect: { ca: caPem }, headersTimeout: timeout, bodyTimeout: timeout, keepAliveTimeout: 60_000 });
  }

  private async authorization(): Promise<string> {
    let token: string;
    try {
      token = (await readFile(this.tokenFile, 'utf8')).trim();
    } catch (err) {
      throw new ControlPlaneError(0, 'NoToken', `cannot read token file ${this.tokenFile}: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`);
    }
    return `Bearer ${token}`;
  }

  async issue(csrPem: string): Promise<IssueAnswer> {
    const res = await request(new URL('/v1/certificates', this.base), {
      method: 'POST',
      dispatcher: this.agent,
      headers: { authorization: await this.authorization(), 'content-type': 'application/json' },
      body: JSON.stringify({ csr: csrPem }),
    });
    const text = await res.body.text();
    if (res.statusCode !== 201) throw refusal(res.statusCode, text);
    return JSON.parse(text) as IssueAnswer;
  }

  /** One long poll: 200 with a new policy body and ETag, or 304 when `etag` is still current after the wait. */
  async policy(etag: string | undefined, signal: AbortSignal): Promise<{ status: 200; etag: string; body: string } | { status: 304 }> {
    const res = await request(new URL(`/v1/policy?wait=${this.longPollSeconds}s`, this.base), {
      method: 'GET',
      dispatcher: this.agent,
      signal,
      headers: { authorization: await this.authorization(), ...(etag ? { 'if-none-match': etag } : {}) },
    });
    const text = await res.body.text();
    if (res.statusCode === 304) return { status: 304 };
    if (res.statusCode !== 200) throw refusal(res.statusCode, text);
    return { status: 200, etag: String(res.headers.etag ?? ''), body: text };
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}

/** The metric label of a failed control plane call: the refusal's reason (bounded: the control plane's own set), or unreachable. */
function failureReason(err: unknown): string {
  return err instanceof ControlPlaneError ? err.reason : 'unreachable';
}

function refusal(status: number, text: string): ControlPlaneError {
  try {
    const e = (JSON.parse(text) as { error?: { reason?: string; message?: string } }).error;
    if (e?.message) return new ControlPlaneError(status, e.reason ?? 'Error', `control plane answered ${status}: ${e.message}`);
  } catch {
    // not JSON: fall through
  }
  return new ControlPlaneError(status, 'Error', `control plane answered ${status}`);
}

interface Metrics {
  certFailures: Counter<'reason'>;
  certExpiry: Gauge;
  policyFailures: Counter<'reason'>;
  policyRejected: Counter;
  policyUpdates: Counter;
}

function createMetrics(registry: Registry): Metrics {
  const registers = [registry];
  return {
    certFailures: new Counter({
      name: 'aigress_proxy_certificate_renewal_failures_total',
      help:
        'Failed attempts to get a certificate from the issuer (the current one keeps serving), by the control plane\'s reason ' +
        '(NamespaceNotEnabled: the namespace is not labelled aigress.io/inject=enabled) or unreachable.',
      labelNames: ['reason'],
      registers,
    }),
    certExpiry: new Gauge({
      name: 'aigress_proxy_certificate_expiry_timestamp_seconds',
      help: 'When the main leaf certificate expires (Unix time).',
      registers,
    }),
    policyFailures: new Counter({
      name: 'aigress_proxy_policy_fetch_failures_total',
      help: 'Failed policy fetches from the control plane (the last good policy stays in force), by reason as above.',
      labelNames: ['reason'],
      registers,
    }),
    policyRejected: new Counter({
      name: 'aigress_proxy_policy_rejected_total',
      help: 'Policies received that failed validation and were not applied.',
      registers,
    }),
    policyUpdates: new Counter({ name: 'aigress_proxy_policy_updates_total', help: 'New policies applied.', registers }),
  };
}

/** The effective policy by long poll, the last good one persisted; a policy that fails validation is never applied. */
export class ClusterPolicySource implements PolicySource {
  private policy: EgressPolicy | undefined;
  private goodEtag: string | undefined;
  /** Last ETag seen, good or not: a rejected policy is not fetched again until it changes. */
  private seenEtag: string | undefined;
  private readonly listeners: Array<(p: EgressPolicy) => void> = [];
  private started = false;
  private closed = false;
  private failures = 0;
  private readonly inflight = new AbortController();
  private timer: Timer | undefined;
  private resolveReady!: (p: EgressPolicy) => void;
  private readonly readyPromise = new Promise<EgressPolicy>((r) => (this.resolveReady = r));

  constructor(
    private readonly client: ControlPlaneClient,
    private readonly stateFile: string,
    private readonly log: Logger,
    private readonly metrics: Metrics,
    private readonly clock: Clock,
    private readonly backoff: { baseMs: number; maxMs: number },
  ) {}

  ready(): Promise<EgressPolicy> {
    if (!this.started) {
      this.started = true;
      void this.restore().then(() => this.poll());
    }
    return this.readyPromise;
  }

  current(): EgressPolicy {
    if (!this.policy) throw new Error('policy source used before ready()');
    return this.policy;
  }

  onChange(listener: (policy: EgressPolicy) => void): void {
    this.listeners.push(listener);
  }

  /** Stops polling and closes the connection to the control plane (shared with the certificate source). */
  close(): void {
    this.closed = true;
    this.timer?.cancel();
    this.inflight.abort();
    void this.client.close();
  }

  /** A container restart in the same pod: start from the last good policy while the control plane is asked. */
  private async restore(): Promise<void> {
    let saved: { etag?: unknown; policy?: unknown };
    try {
      saved = JSON.parse(await readFile(this.stateFile, 'utf8')) as typeof saved;
    } catch {
      return; // none yet (first start), or unreadable: the control plane decides
    }
    const v = validatePolicy(saved.policy);
    if (!v.ok || typeof saved.etag !== 'string') {
      this.log.warn({ file: this.stateFile }, 'saved policy is not valid; ignoring it');
      return;
    }
    this.accept(v.policy, saved.etag, false);
    this.log.info({ policy: v.policy.metadata.name, etag: saved.etag }, 'last good policy restored from disk');
  }

  private async poll(): Promise<void> {
    while (!this.closed) {
      try {
        const r = await this.client.policy(this.seenEtag, this.inflight.signal);
        if (this.failures > 0) this.log.info({ failures: this.failures }, 'control plane reachable again');
        this.failures = 0;
        if (r.status === 200) this.receive(r.etag, r.body);
      } catch (err) {
        if (this.closed) return;
        this.failures++;
        this.metrics.policyFailures.inc({ reason: failureReason(err) });
        const delay = backoffDelay(this.failures, this.backoff.baseMs, this.backoff.maxMs);
        // Log the first failure and then sparsely; the metric counts them all.
        if (this.failures === 1 || this.failures % 10 === 0) {
          this.log.warn({ err: errorMessage(err), failures: this.failures, retryInMs: delay, enforcing: this.goodEtag ?? 'nothing yet' }, 'policy fetch failed; keeping the last good policy');
        }
        await new Promise<void>((resolve) => (this.timer = this.clock.setTimeout(resolve, delay)));
      }
    }
  }

  private receive(etag: string, body: string): void {
    this.seenEtag = etag;
    let doc: unknown;
    try {
      doc = JSON.parse(body);
    } catch {
      this.metrics.policyRejected.inc();
      this.log.error({ etag }, 'policy from the control plane is not JSON; keeping the last good policy');
      return;
    }
    const v = validatePolicy(doc);
    if (!v.ok) {
      this.metrics.policyRejected.inc();
      this.log.error({ etag, issues: formatIssues(v.issues) }, 'policy from the control plane rejected; keeping the last good policy');
      return;
    }
    this.accept(v.policy, etag, true);
  }

  private accept(policy: EgressPolicy, etag: string, persist: boolean): void {
    const changed = JSON.stringify(policy) !== JSON.stringify(this.policy);
    const first = this.policy === undefined;
    this.policy = policy;
    this.goodEtag = etag;
    this.seenEtag = etag;
    if (persist) void this.save(policy, etag);
    if (first) {
      this.resolveReady(policy);
      return;
    }
    if (!changed) return;
    this.metrics.policyUpdates.inc();
    this.log.info({ policy: policy.metadata.name, etag }, 'policy updated from the control plane');
    for (const l of this.listeners) l(policy);
  }

  private async save(policy: EgressPolicy, etag: string): Promise<void> {
    const tmp = `${this.stateFile}.tmp`;
    try {
      await writeFile(tmp, JSON.stringify({ etag, policy }), { mode: 0o644 });
      await rename(tmp, this.stateFile); // atomic: a crash mid-write leaves the previous file whole
    } catch (err) {
      this.log.warn({ file: this.stateFile, err: errorMessage(err) }, 'could not save the policy; a container restart will wait for the control plane');
    }
  }
}

interface Leaf {
  names: string[];
  context: SecureContext;
  validity: Validity;
  renewer?: Renewer;
}

/** Hosts outside the main certificate (regions not in the table) keep their own leaf; bounded. */
const MAX_EXTRA_HOSTS = 100;

/** Leaves from the issuer: one for the policy's table names, plus one per other AI host on demand. */
export class ClusterCertificateSource implements CertificateSource {
  private main: Leaf | undefined;
  private ca: string | undefined;
  private readonly extra = new Map<string, Leaf>();
  private readonly pending = new Map<string, Promise<SecureContext>>();
  private readyPromise: Promise<void> | undefined;
  private mainRenewer: Renewer | undefined;
  private closed = false;

  constructor(
    private readonly client: ControlPlaneClient,
    private readonly policy: PolicySource,
    private readonly log: Logger,
    private readonly metrics: Metrics,
    private readonly clock: Clock,
    private readonly backoff: { baseMs: number; maxMs: number },
  ) {}

  /** Resolves once the first certificate is issued (after the first policy, which says which names). */
  ready(): Promise<void> {
    this.readyPromise ??= this.start();
    return this.readyPromise;
  }

  private async start(): Promise<void> {
    const policy = await this.policy.ready();
    // The first certificate: retried with backoff until it comes; the proxy stays unready meanwhile.
    for (let attempt = 1; ; attempt++) {
      if (this.closed) throw new Error('certificate source closed');
      try {
        this.main = await this.issue(certificateNames(policy.spec.providers));
        break;
      } catch (err) {
        this.metrics.certFailures.inc({ reason: failureReason(err) });
        const delay = backoffDelay(attempt, this.backoff.baseMs, this.backoff.maxMs);
        this.log.warn({ err: errorMessage(err), attempt, retryInMs: delay }, 'certificate request failed; retrying');
        await new Promise<void>((r) => this.clock.setTimeout(r, delay));
      }
    }
    this.metrics.certExpiry.set(this.main.validity.notAfter.getTime() / 1000);
    this.mainRenewer = new Renewer({
      clock: this.clock,
      backoffBaseMs: this.backoff.baseMs,
      backoffMaxMs: this.backoff.maxMs,
      renew: async () => {
        const next = await this.issue(certificateNames(this.policy.current().spec.providers));
        this.main = next;
        this.metrics.certExpiry.set(next.validity.notAfter.getTime() / 1000);
        this.log.info({ names: next.names.length, notAfter: next.validity.notAfter.toISOString() }, 'certificate renewed');
        return next.validity;
      },
      onFailure: (err, attempt, retryInMs) => {
        this.metrics.certFailures.inc({ reason: failureReason(err) });
        this.log.warn({ err: errorMessage(err), attempt, retryInMs }, 'certificate renewal failed; serving the current certificate');
      },
    });
    this.mainRenewer.start(this.main.validity);
    // A policy that enables other providers needs other names: get a certificate for them now.
    this.policy.onChange((p) => {
      const names = certificateNames(p.spec.providers);
      if (this.main && names.join(',') !== this.main.names.join(',')) this.mainRenewer?.renewNow();
    });
  }

  caPem(): string {
    if (!this.ca) throw new Error('certificate source used before ready()');
    return this.ca;
  }

  contextFor(host: string): SecureContext | Promise<SecureContext> {
    const main = this.main;
    if (!main) return Promise.reject(new Error('certificate source used before ready()'));
    if (namesCover(main.names, host)) return main.context;
    const h = host.toLowerCase().replace(/\.$/, '');
    const hit = this.extra.get(h);
    if (hit) return hit.context;
    let p = this.pending.get(h);
    if (!p) {
      p = this.issueExtra(h).finally(() => this.pending.delete(h));
      this.pending.set(h, p);
    }
    return p;
  }

  close(): void {
    this.closed = true;
    this.mainRenewer?.stop();
    for (const l of this.extra.values()) l.renewer?.stop();
    this.extra.clear();
  }

  /** A leaf for one host outside the table (e.g. a new region), renewed like the main one while it is kept. */
  private async issueExtra(host: string): Promise<SecureContext> {
    const leaf = await this.issue([host]);
    if (this.extra.size >= MAX_EXTRA_HOSTS) {
      const [oldest, old] = this.extra.entries().next().value as [string, Leaf];
      old.renewer?.stop();
      this.extra.delete(oldest);
    }
    leaf.renewer = new Renewer({
      clock: this.clock,
      backoffBaseMs: this.backoff.baseMs,
      backoffMaxMs: this.backoff.maxMs,
      renew: async () => {
        const next = await this.issue([host]);
        const cur = this.extra.get(host);
        if (cur) Object.assign(cur, { context: next.context, validity: next.validity });
        return next.validity;
      },
      onFailure: (err, attempt, retryInMs) => {
        this.metrics.certFailures.inc({ reason: failureReason(err) });
        this.log.warn({ host, err: errorMessage(err), attempt, retryInMs }, 'certificate renewal failed; serving the current certificate');
      },
    });
    leaf.renewer.start(leaf.validity);
    this.extra.set(host, leaf);
    this.log.info({ host }, 'certificate issued for a host outside the main certificate');
    return leaf.context;
  }

  private async issue(names: string[]): Promise<Leaf> {
    // Loaded on first use: only needed here, off the capture path.
    const { createCsr, certificateValidity } = await import('../../../shared/leaf.js');
    const { csrPem, keyPem } = await createCsr(names);
    const answer = await this.client.issue(csrPem);
    const validity = certificateValidity(answer.certificate);
    this.ca ??= answer.ca;
    if (answer.ca !== this.ca) {
      // The control plane's CA changed (a new aigress-ca Secret): apps trust the old one until the pod restarts.
      this.log.error({}, 'the issuer now signs with a different CA than the one in the app trust bundle; restart the pod to pick it up');
    }
    return { names, context: createSecureContext({ key: keyPem, cert: answer.certificate, minVersion: 'TLSv1.2' }), validity };
  }
}

/** The cluster-mode pair the proxy runs with. */
export function clusterSources(opts: ClusterOptions): { certificates: ClusterCertificateSource; policy: ClusterPolicySource; registry: Registry } {
  const caPem = opts.caPem ?? process.env[CONTROL_PLANE_CA_ENV];
  if (!caPem || !caPem.includes('-----BEGIN CERTIFICATE-----')) {
    throw new UserError(`cluster mode needs the control plane's CA certificate in $${CONTROL_PLANE_CA_ENV} (the webhook sets it on injected proxies)`);
  }
  if (opts.controlPlane.protocol !== 'https:') throw new UserError(`--control-plane ${opts.controlPlane.href}: must be an https:// URL`);
  const registry = opts.registry ?? new Registry();
  const metrics = createMetrics(registry);
  const clock = opts.clock ?? systemClock;
  const backoff = { baseMs: opts.backoffBaseMs ?? 1000, maxMs: opts.backoffMaxMs ?? 5 * 60_000 };
  const client = new ControlPlaneClient(opts.controlPlane, caPem, opts.tokenFile, opts.longPollSeconds ?? 30);
  const policy = new ClusterPolicySource(client, join(opts.stateDir ?? CA_BUNDLE_DIR, POLICY_STATE_FILE), opts.log, metrics, clock, {
    baseMs: backoff.baseMs,
    maxMs: Math.min(backoff.maxMs, 30_000), // policy staleness matters more than load: retry at least every 30 s
  });
  const certificates = new ClusterCertificateSource(client, policy, opts.log, metrics, clock, backoff);
  return { certificates, policy, registry };
}
