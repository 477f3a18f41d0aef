import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import type { Logger } from '../../shared/log.js';
import type { EgressPolicySpec } from '../../shared/policy/types.js';
import { defaultPolicySpec } from '../../shared/policy/validate.js';
import { startControlPlane, type ControlPlane } from '../../webhook/control-plane.js';
import type { MintingOptions } from '../../webhook/credentials/minting.js';
import { kubeClients, kubeConfigFor } from '../../webhook/kube.js';
import { defaultConfig, type InjectionConfig } from '../../webhook/config.js';
import { createWebhookMetrics } from '../../webhook/metrics.js';
import { createWebhookServer, type ControlPlaneServer } from '../../webhook/server.js';
import { FakeApiServer } from './fake-apiserver.js';
import { captureLogger } from './log.js';

export const CP_NAMESPACE = 'aigress-system';

/**
 * A whole control plane on loopback, wired as `aigress webhook` wires it, against the fake API server: CA
 * bootstrapped into its Secret, serving certificate (also valid for `localhost`) and caBundle, policy controller,
 * issuer and policy routes beside admission (/mutate, with the CA given to injected proxies).
 */
export interface LocalControlPlane {
  api: FakeApiServer;
  cp: ControlPlane;
  /** The injection config /mutate uses (cluster mode: control plane address and CA). */
  injection: InjectionConfig;
  server: ControlPlaneServer;
  /** https://localhost:<port> (TCP only) */
  url: string;
  /** 0 when listening on a Unix socket. */
  port: number;
  log: Logger;
  logText(): string;
  /** Writes a ServiceAccount token the fake API server knows into a file, as the kubelet projects it. */
  tokenFile(namespace: string, serviceAccount: string): Promise<string>;
  /** Labels a namespace as opted in (creating it). */
  enableNamespace(name: string): void;
  close(): Promise<void>;
}

export interface LocalControlPlaneOptions {
  defaults?: EgressPolicySpec;
  /** TCP listen address (default 127.0.0.1). */
  host?: string;
  /** Listen on this Unix socket instead of TCP (reachable from any network namespace through the file system). */
  socketPath?: string;
  rateLimit?: { burst: number; perSecond: number };
  /** The control plane address injected proxies get (default: the built-in one, the chart Service's). */
  address?: string;
  /** STS and Entra ID endpoints (fakes) for minted credentials. */
  minting?: MintingOptions;
}

export async function startLocalControlPlane(opts: LocalControlPlaneOptions = {}): Promise<LocalControlPlane> {
  const api = await FakeApiServer.start({ bookmarkIntervalMs: 500 });
  api.put('v1', 'namespaces', { metadata: { name: CP_NAMESPACE } });
  api.put('admissionregistration.k8s.io/v1', 'mutatingwebhookconfigurations', {
    metadata: { name: 'aigress' },
    webhooks: [{ name: 'pods.aigress.io', clientConfig: { service: { name: 'aigress', namespace: CP_NAMESPACE, path: '/mutate' } }, admissionReviewVersions: ['v1'], sideEffects: 'None' }],
  });
  const { log, text } = captureLogger();
  const clients = kubeClients(kubeConfigFor({ server: api.url, caPem: api.caPem, token: api.adminToken, tlsServerName: 'localhost' }));
  const registry = new Registry();
  const cp = await startControlPlane({
    clients,
    namespace: CP_NAMESPACE,
    serviceName: 'aigress',
    extraDnsNames: ['localhost'],
    caSource: { kind: 'secret', namespace: CP_NAMESPACE, name: 'aigress-ca', bootstrap: true },
    defaults: opts.defaults ?? defaultPolicySpec(),
    log,
    registry,
    rateLimit: opts.rateLimit ?? { burst: 1000, perSecond: 1000 },
    minting: opts.minting,
  });
  await cp.synced;
  const pair = cp.serving.current();
  const base = defaultConfig().injection;
  const injection: InjectionConfig = { ...base, controlPlane: { ...base.controlPlane, ...(opts.address ? { address: opts.address } : {}), namespace: CP_NAMESPACE, caPem: cp.caPem } };
  const server = await createWebhookServer({ tls: { certPem: pair.certPem, keyPem: pair.keyPem }, logger: log, injection, metrics: createWebhookMetrics(registry), managedCredentials: (ns) => cp.managedCredentials(ns) });
  cp.serving.onRenew((p) => server.server.setSecureContext({ cert: p.certPem, key: p.keyPem, minVersion: 'TLSv1.2' }));
  for (const r of cp.routes) server.addRoute(r.method, r.path, r.handler, r.options);
  server.setReadiness(() => cp.readiness());
  let port = 0;
  if (opts.socketPath) {
    const path = opts.socketPath;
    await new Promise<void>((resolve, reject) => server.server.once('error', reject).listen(path, () => resolve()));
  } else port = await server.listen(0, opts.host ?? '127.0.0.1');
  const dir = await mkdtemp(join(tmpdir(), 'aigress-tokens-'));
  let n = 0;
  return {
    api,
    cp,
    injection,
    server,
    url: `https://localhost:${port}`,
    port,
    log,
    logText: text,
    tokenFile: async (namespace, serviceAccount) => {
      const token = `token-${namespace}-${serviceAccount}-${++n}`;
      api.addToken(token, { namespace, serviceAccount, audiences: ['aigress'], podName: `${serviceAccount}-pod-${n}` });
      const file = join(dir, token);
      await writeFile(file, token + '\n');
      return file;
    },
    enableNamespace: (name) => {
      api.put('v1', 'namespaces', { metadata: { name, labels: { 'aigress.io/inject': 'enabled' } } });
    },
    close: async () => {
      cp.stop();
      server.server.closeAllConnections();
      await server.close();
      await api.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
