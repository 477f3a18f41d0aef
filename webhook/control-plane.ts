import { Counter, Gauge, type Registry } from 'prom-client';
import type { Logger } from '../shared/log.js';
import type { EgressPolicySpec, ProviderId } from '../shared/policy/types.js';
import type { Clock } from '../shared/renewal.js';
import { loadCa, type CaSource } from './ca.js';
import type { MintingOptions } from './credentials/minting.js';
import { credentialRoutes } from './credentials/server.js';
import { CredentialSecrets } from './credentials/secrets.js';
import { issuerRoutes } from './issuer.js';
import type { KubeClients } from './kube.js';
import type { InformerHealth } from './policy/informer.js';
import type { Readiness } from './server.js';
import { PolicyController } from './policy/controller.js';
import type { Route } from './policy/http.js';
import { policyRoutes } from './policy/server.js';
import { PolicyStore } from './policy/store.js';
import { TokenReviewer } from './tokenreview.js';
import { CaBundleReconciler, MUTATING_WEBHOOK_CONFIGURATION, servingDnsNames, ServingCertificate } from './webhook-cert.js';

// The control plane beside admission: its CA, its own serving certificate (and the caBundle that makes the API
// server trust it), the policy controller, and the issuer and policy endpoints for proxies. `aigress webhook`
// starts this, serves with `serving`, and mounts `routes` on its HTTPS server.

export interface ControlPlaneOptions {
  clients: KubeClients;
  /** The control plane's own namespace (its CA Secret lives here; never served policies). */
  namespace: string;
  /** The Service in front of the control plane: its DNS names go into the serving certificate. */
  serviceName: string;
  /** Extra names for the serving certificate (e.g. localhost for tests and port-forwarding). */
  extraDnsNames?: string[];
  caSource: CaSource;
  defaults: EgressPolicySpec;
  mutatingWebhookConfiguration?: string;
  log: Logger;
  registry: Registry;
  clock?: Clock;
  leafValidityMs?: number;
  servingValidityMs?: number;
  rateLimit?: { burst: number; perSecond: number };
  /** STS and Entra ID endpoints for minted credentials (flags; tests point them at fakes). */
  minting?: MintingOptions;
}

export interface ControlPlane {
  /** PEM of the CA (public): proxies verify the control plane with it; apps trust leaves through it. */
  readonly caPem: string;
  readonly serving: ServingCertificate;
  readonly routes: Route[];
  readonly store: PolicyStore;
  /** Providers the namespace's effective policy names a managed credential for (injection's SDK placeholders). */
  managedCredentials(namespace: string): ProviderId[];
  /** Resolves once every namespace's policy is loaded (the policy and issuer endpoints answer 503 before). */
  readonly synced: Promise<void>;
  /**
   * For /readyz: ready once the policies are loaded; after that, an API server that cannot be reached, a watch
   * that fails, stalls or keeps expiring are listed as degraded but do not make it unready (see readinessOf).
   */
  readiness(): Readiness;
  stop(): void;
}

/** Loads or bootstraps the CA (fails the start on error), then starts the rest; nothing listens here. */
export async function startControlPlane(opts: ControlPlaneOptions): Promise<ControlPlane> {
  const { ca, origin } = await loadCa(opts.caSource, opts.clients.core, opts.log);
  opts.log.info({ origin, subject: ca.cert.subject, notAfter: ca.cert.notAfter.toISOString() }, 'CA loaded');
  const servingFailures = new Counter({
    name: 'aigress_webhook_certificate_renewal_failures_total',
    help: 'Failed renewals of the control plane\'s own serving certificate (the current one keeps serving).',
    registers: [opts.registry],
  });
  const serving = await ServingCertificate.start({
    onRenewalFailure: () => servingFailures.inc(),
    ca,
    dnsNames: [...servingDnsNames(opts.serviceName, opts.namespace), ...(opts.extraDnsNames ?? [])],
    validityMs: opts.servingValidityMs,
    clock: opts.clock,
    log: opts.log,
  });
  const bundle = new CaBundleReconciler({
    admission: opts.clients.admission,
    name: opts.mutatingWebhookConfiguration ?? MUTATING_WEBHOOK_CONFIGURATION,
    caPem: ca.certPem,
    log: opts.log,
    clock: opts.clock,
  });
  void bundle.start();
  const store = new PolicyStore();
  const controller = new PolicyController({ clients: opts.clients, defaults: opts.defaults, store, log: opts.log, ownNamespace: opts.namespace, clock: opts.clock });
  // Managed credentials: Secrets of this namespace only, served to the namespaces whose policy names them.
  const secrets = new CredentialSecrets({ clients: opts.clients, namespace: opts.namespace, log: opts.log, clock: opts.clock });
  const synced = controller.start();
  // Not part of `synced`: admission and policies must not wait on credentials (GET /v1/credentials answers 503
  // until the Secrets are listed; the informer retries a failed list with backoff and says so in the log).
  void secrets.start();
  const reviewer = new TokenReviewer(opts.clients.authn, { clock: opts.clock });
  const identify = (token: string, source?: string): ReturnType<TokenReviewer['identify']> => reviewer.identify(token, source);
  const health = (): InformerHealth[] => [...controller.health(), secrets.health()];
  new Gauge({
    name: 'aigress_webhook_watch_current',
    help: 'Whether each watch of the API server is current (1) or failing, stalled or expiring (0); while 0 the last good state is served.',
    labelNames: ['informer'],
    registers: [opts.registry],
    collect() {
      for (const h of health()) this.set({ informer: h.name }, h.synced && !h.problem ? 1 : 0);
    },
  });
  const clock = opts.clock;
  const routes = [
    ...issuerRoutes({ ca, identify, store, log: opts.log, registry: opts.registry, leafValidityMs: opts.leafValidityMs, rateLimit: opts.rateLimit, clock: opts.clock }),
    ...policyRoutes({ store, identify, log: opts.log, registry: opts.registry }),
    ...credentialRoutes({ store, secrets, identify, log: opts.log, registry: opts.registry, now: opts.clock ? () => opts.clock!.now() : undefined, minting: opts.minting }),
  ];
  return {
    caPem: ca.certPem,
    serving,
    routes,
    store,
    managedCredentials: (namespace) => {
      const e = store.get(namespace);
      return e?.kind === 'policy' ? e.policy.spec.credentials.map((c) => c.provider) : [];
    },
    synced,
    readiness: () => readinessOf(store.isSynced(), health(), clock ? clock.now() : Date.now()),
    stop: () => {
      serving.stop();
      bundle.stop();
      controller.stop();
      secrets.stop();
    },
  };
}

/**
 * The readiness rule (pure). Not ready until the policies are loaded: before that the policy and issuer
 * endpoints answer 503 and admission cannot know a namespace's managed credentials. Once loaded, readiness does
 * not depend on the API server: every replica talks to the same one, so taking replicas out of the Service for
 * its faults would turn "serving the last good policies" into no admission (failurePolicy) and no certificates
 * at all. What is degraded is listed in the answer (and in aigress_webhook_watch_current).
 */
export function readinessOf(policiesLoaded: boolean, informers: readonly InformerHealth[], now: number): Readiness {
  const notes: string[] = [];
  if (!policiesLoaded) notes.push('policies not loaded yet (the policy and certificate endpoints answer 503)');
  for (const h of informers) {
    if (!h.synced) notes.push(`${h.name}: not listed yet${h.problem ? ` (${h.problem})` : ''}`);
    else if (h.problem) {
      const secs = Math.round((now - (h.since ?? now)) / 1000);
      notes.push(`degraded: ${h.name}: ${h.problem} for ${secs} s; serving the last good state`);
    }
  }
  return { ready: policiesLoaded, notes };
}
