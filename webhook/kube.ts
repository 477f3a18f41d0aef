import {
  AdmissionregistrationV1Api,
  AuthenticationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
} from '@kubernetes/client-node';
import { UserError } from '../shared/errors.js';
import { KubeWatch, type WatchClient } from './kube-watch.js';

// How the control plane talks to the Kubernetes API: one KubeConfig (in-cluster, or built in code for tests and
// out-of-cluster runs) and the few typed clients it needs. Nothing here decides anything.

export interface ClusterAccess {
  /** API server URL, e.g. https://10.96.0.1:443. */
  server: string;
  /** PEM of the CA that signed the API server's certificate. */
  caPem: string;
  /** Bearer token (the control plane's ServiceAccount token). */
  token: string;
  /** TLS server name when the URL's host is not in the server's certificate (e.g. an IP). */
  tlsServerName?: string;
}

export function kubeConfigFor(a: ClusterAccess): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [
      {
        name: 'cluster',
        server: a.server,
        caData: Buffer.from(a.caPem).toString('base64'),
        skipTLSVerify: false,
        ...(a.tlsServerName ? { tlsServerName: a.tlsServerName } : {}),
      },
    ],
    users: [{ name: 'aigress', token: a.token }],
    contexts: [{ name: 'aigress', cluster: 'cluster', user: 'aigress' }],
    currentContext: 'aigress',
  });
  return kc;
}

/** A kubeconfig file when given; otherwise in a pod the ServiceAccount the kubelet mounts, else $KUBECONFIG. */
export function defaultKubeConfig(file?: string): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (file) kc.loadFromFile(file);
    else kc.loadFromDefault();
  } catch (err) {
    throw new UserError(`${file ? `--kubeconfig ${file}` : 'kubeconfig'}: ${(err as Error).message.split('\n')[0]}`);
  }
  if (!kc.getCurrentCluster()) throw new UserError(`${file ? `--kubeconfig ${file}` : 'kubeconfig'}: no current cluster`);
  return kc;
}

export interface KubeClients {
  readonly config: KubeConfig;
  readonly core: CoreV1Api;
  readonly admission: AdmissionregistrationV1Api;
  readonly authn: AuthenticationV1Api;
  readonly custom: CustomObjectsApi;
  readonly watch: WatchClient;
}

export function kubeClients(config: KubeConfig): KubeClients {
  return {
    config,
    core: config.makeApiClient(CoreV1Api),
    admission: config.makeApiClient(AdmissionregistrationV1Api),
    authn: config.makeApiClient(AuthenticationV1Api),
    custom: config.makeApiClient(CustomObjectsApi),
    watch: new KubeWatch(config),
  };
}

/** The HTTP status of a failed API call (client-node's ApiException carries it as `code`), if there is one. */
export function apiStatus(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const code = (err as { code?: unknown; statusCode?: unknown }).code ?? (err as { statusCode?: unknown }).statusCode;
  return typeof code === 'number' ? code : undefined;
}

/** One line about a failed API call, without the response headers and body client-node puts in its message. */
export function apiErrorMessage(err: unknown): string {
  const status = apiStatus(err);
  const body = (err as { body?: unknown } | null)?.body;
  let detail: string | undefined;
  if (typeof body === 'string') {
    try {
      const parsed = JSON.parse(body) as { message?: unknown };
      if (typeof parsed.message === 'string') detail = parsed.message;
    } catch {
      detail = undefined;
    }
  } else if (typeof body === 'object' && body !== null && typeof (body as { message?: unknown }).message === 'string') {
    detail = (body as { message: string }).message;
  }
  if (status !== undefined) return `HTTP ${status}${detail ? `: ${detail}` : ''}`;
  return err instanceof Error ? err.message.split('\n')[0]! : String(err);
}
