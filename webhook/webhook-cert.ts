import type { AdmissionregistrationV1Api } from '@kubernetes/client-node';
import type { Logger } from '../shared/log.js';
import { issueLeaf, type CertificateAuthority, type PemPair } from '../shared/pki.js';
import { Renewer, systemClock, type Clock, type Timer, type Validity } from '../shared/renewal.js';
import { apiErrorMessage, apiStatus } from './kube.js';

// The webhook's own HTTPS certificate, issued from the aigress CA by each replica for itself (its key stays in
// memory), renewed at two thirds of its lifetime without a restart; and the CA written into the caBundle of
// the MutatingWebhookConfiguration so the API server trusts it.

export const MUTATING_WEBHOOK_CONFIGURATION = 'aigress';

/** The names the API server (and proxies) use to reach a Service: every form of `<svc>.<ns>.svc[.cluster.local]`. */
export function servingDnsNames(service: string, namespace: string, clusterDomain = 'cluster.local'): string[] {
  return [service, `${service}.${namespace}`, `${service}.${namespace}.svc`, `${service}.${namespace}.svc.${clusterDomain}`];
}

export interface ServingCertificateOptions {
  ca: CertificateAuthority;
  dnsNames: string[];
  /** Lifetime of each serving certificate; renewal happens at two thirds of it. */
  validityMs?: number;
  clock?: Clock;
  log: Logger;
  /** Counts failed renewals (e.g. a prom-client Counter's inc). */
  onRenewalFailure?: () => void;
}

export type ServingPair = PemPair & Validity;

export class ServingCertificate {
  private pair!: ServingPair;
  private readonly listeners: Array<(p: ServingPair) => void> = [];
  private readonly renewer: Renewer;
  private readonly clock: Clock;

  private constructor(private readonly opts: ServingCertificateOptions) {
    this.clock = opts.clock ?? systemClock;
    this.renewer = new Renewer({
      clock: this.clock,
      renew: async () => {
        this.pair = await this.issue();
        opts.log.info({ names: opts.dnsNames, notAfter: this.pair.notAfter.toISOString() }, 'webhook serving certificate renewed');
        for (const l of this.listeners) l(this.pair);
        return this.pair;
      },
      onFailure: (err, attempt, retryInMs) => {
        opts.onRenewalFailure?.();
        opts.log.warn({ err: String(err), attempt, retryInMs }, 'webhook serving certificate renewal failed; keeping the current one');
      },
    });
  }

  /** Issues the first certificate and starts the renewal cycle. */
  static async start(opts: ServingCertificateOptions): Promise<ServingCertificate> {
    const s = new ServingCertificate(opts);
    s.pair = await s.issue();
    s.renewer.start(s.pair);
    return s;
  }

  current(): ServingPair {
    return this.pair;
  }

  /** Called with each renewed pair: hand it to `tls.Server.setSecureContext`, new connections use it. */
  onRenew(listener: (p: ServingPair) => void): void {
    this.listeners.push(listener);
  }

  stop(): void {
    this.renewer.stop();
  }

  private async issue(): Promise<ServingPair> {
    const now = this.clock.now();
    const leaf = await issueLeaf(this.opts.ca, { dnsNames: this.opts.dnsNames, validityMs: this.opts.validityMs ?? 24 * 3_600_000, now });
    return { certPem: leaf.certPem, keyPem: leaf.keyPem, notBefore: new Date(now - 60_000), notAfter: leaf.notAfter };
  }
}

export type CaBundleResult = 'patched' | 'unchanged' | 'missing';

/**
 * Makes every webhook in the named MutatingWebhookConfiguration carry `caPem` as its caBundle. Reads and patches
 * that one object by name (never lists); the JSON patch tests each webhook's name at its index, so a concurrent
 * edit that reorders the list fails the patch (422) instead of writing the bundle into the wrong webhook.
 */
export async function ensureCaBundle(
  admission: AdmissionregistrationV1Api,
  name: string,
  caPem: string,
): Promise<CaBundleResult> {
  const want = Buffer.from(caPem).toString('base64');
  for (let attempt = 1; ; attempt++) {
    let mwc;
    try {
      mwc = await admission.readMutatingWebhookConfiguration({ name });
    } catch (err) {
      if (apiStatus(err) === 404) return 'missing';
      throw new Error(`reading MutatingWebhookConfiguration ${name}: ${apiErrorMessage(err)}`);
    }
    const ops: object[] = [];
    (mwc.webhooks ?? []).forEach((w, i) => {
      if (w.clientConfig.caBundle === want) return;
      ops.push({ op: 'test', path: `/webhooks/${i}/name`, value: w.name });
      ops.push({ op: 'add', path: `/webhooks/${i}/clientConfig/caBundle`, value: want });
    });
    if (ops.length === 0) return 'unchanged';
    try {
      await admission.patchMutatingWebhookConfiguration({ name, body: ops });
      return 'patched';
    } catch (err) {
      if (apiStatus(err) === 422 && attempt < 3) continue; // changed under us: read again
      throw new Error(`patching MutatingWebhookConfiguration ${name}: ${apiErrorMessage(err)}`);
    }
  }
}

/**
 * Keeps the caBundle right: at start and then periodically, because `helm upgrade` re-applies the chart's
 * object (which cannot know the CA) and would otherwise leave the API server unable to call the webhook.
 */
export class CaBundleReconciler {
  private timer: Timer | undefined;
  private stopped = false;
  private last: CaBundleResult | 'error' | undefined;

  constructor(
    private readonly opts: {
      admission: AdmissionregistrationV1Api;
      name: string;
      caPem: string;
      log: Logger;
      intervalMs?: number;
      clock?: Clock;
    },
  ) {}

  /** One pass now; resolves with its result (errors are logged and retried on the next pass). */
  async reconcile(): Promise<CaBundleResult | 'error'> {
    let result: CaBundleResult | 'error';
    try {
      result = await ensureCaBundle(this.opts.admission, this.opts.name, this.opts.caPem);
    } catch (err) {
      result = 'error';
      this.opts.log.warn({ err: String(err) }, 'caBundle update failed; will retry');
    }
    if (result === 'patched') this.opts.log.info({ mutatingWebhookConfiguration: this.opts.name }, 'caBundle written');
    if (result === 'missing' && this.last !== 'missing') {
      this.opts.log.warn({ mutatingWebhookConfiguration: this.opts.name }, 'MutatingWebhookConfiguration not found; will retry');
    }
    this.last = result;
    return result;
  }

  async start(): Promise<CaBundleResult | 'error'> {
    const r = await this.reconcile();
    this.loop();
    return r;
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
  }

  private loop(): void {
    if (this.stopped) return;
    const clock = this.opts.clock ?? systemClock;
    this.timer = clock.setTimeout(() => {
      void this.reconcile().then(() => this.loop());
    }, this.opts.intervalMs ?? 60_000);
  }
}
