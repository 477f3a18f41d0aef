import { randomBytes } from 'node:crypto';
import { LABEL_INJECT } from '../../shared/constants.js';
import { apiErrorMessage } from '../../webhook/kube.js';
import type { KubeHttp, KubeResponse } from './kube-http.js';

// What `aigress check` reads from the cluster, fetched once, every read tolerant: a failed read becomes a fact
// (its HTTP status or error) that the checks judge, so one missing permission fails one check, not the run.

export type Obj = Record<string, unknown>;

/** One read: the object, or why there is none (404 is `status: 404`). */
export type Read<T = Obj> = { ok: true; value: T } | { ok: false; status?: number; error: string };

export interface CheckOptions {
  /** The control plane's namespace (the chart's release namespace). */
  namespace: string;
  /** The CA Secret's name. */
  caSecret: string;
  /** The expected CRDs (from charts/aigress/crds), by name; absent when this installation of aigress has none. */
  expectedCrds?: Record<string, Obj>;
  /** Client version (this CLI). */
  clientVersion: string;
  /** Now, for certificate expiry. */
  now: Date;
  /** Days before expiry at which the CA is reported. */
  caWarnDays: number;
}

export interface Facts {
  server: string;
  version: Read;
  crds: Record<string, Read>;
  deployment: Read;
  caSecret: Read;
  webhookConfig: Read;
  namespaces: Read<Obj[]>;
  policies: Read<Obj[]>;
  clusterPolicy: Read;
  pods: Read<Obj[]>;
  /** The dry-run pod create in the first opted-in namespace; absent when there is none. */
  dryRun?: { namespace: string; response: Read };
}

export const CRD_NAMES = ['egresspolicies.aigress.io', 'clusteregresspolicies.aigress.io'] as const;

function toRead(r: KubeResponse): Read {
  if (r.status >= 200 && r.status < 300 && typeof r.body === 'object' && r.body !== null) return { ok: true, value: r.body as Obj };
  const message = typeof r.body === 'object' && r.body !== null && typeof (r.body as Obj).message === 'string' ? String((r.body as Obj).message) : `HTTP ${r.status}`;
  return { ok: false, status: r.status, error: message };
}

async function read(http: KubeHttp, path: string): Promise<Read> {
  try {
    return toRead(await http.get(path));
  } catch (err) {
    return { ok: false, error: apiErrorMessage(err) };
  }
}

async function list(http: KubeHttp, path: string): Promise<Read<Obj[]>> {
  const r = await read(http, path);
  if (!r.ok) return r;
  return Array.isArray(r.value.items) ? { ok: true, value: r.value.items as Obj[] } : { ok: false, error: 'not a list' };
}

const labelsOf = (o: Obj): Record<string, string> => ((o.metadata as Obj | undefined)?.labels as Record<string, string> | undefined) ?? {};
export const nameOf = (o: Obj): string => String((o.metadata as Obj | undefined)?.name ?? '');

/** A pod that exists only in the dry run: what the webhook should inject. */
export function dryRunPod(): Obj {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: `aigress-check-${randomBytes(3).toString('hex')}`, labels: { 'app.kubernetes.io/name': 'aigress-check' } },
    spec: { containers: [{ name: 'app', image: 'registry.k8s.io/pause:3.10' }] },
  };
}

/** Every read `check` needs; `pre` skips what only an installed aigress has. */
export async function gatherFacts(http: KubeHttp, opts: CheckOptions, pre: boolean): Promise<Facts> {
  const ns = encodeURIComponent(opts.namespace);
  const [version, crd0, crd1, deployment, caSecret, webhookConfig, namespaces, policies, clusterPolicy, pods] = await Promise.all([
    read(http, '/version'),
    read(http, `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${CRD_NAMES[0]}`),
    read(http, `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${CRD_NAMES[1]}`),
    read(http, `/apis/apps/v1/namespaces/${ns}/deployments/aigress`),
    pre ? Promise.resolve<Read>({ ok: false, error: 'not read before install' }) : read(http, `/api/v1/namespaces/${ns}/secrets/${encodeURIComponent(opts.caSecret)}`),
    read(http, '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/aigress'),
    list(http, '/api/v1/namespaces'),
    pre ? Promise.resolve<Read<Obj[]>>({ ok: true, value: [] }) : list(http, '/apis/aigress.io/v1alpha1/egresspolicies'),
    pre ? Promise.resolve<Read>({ ok: false, error: 'not read before install' }) : read(http, '/apis/aigress.io/v1alpha1/clusteregresspolicies/default'),
    pre ? Promise.resolve<Read<Obj[]>>({ ok: true, value: [] }) : list(http, '/api/v1/pods'),
  ]);
  const facts: Facts = {
    server: http.server, version, crds: { [CRD_NAMES[0]]: crd0, [CRD_NAMES[1]]: crd1 }, deployment, caSecret, webhookConfig,
    namespaces, policies, clusterPolicy, pods,
  };
  if (!pre && namespaces.ok) {
    const target = namespaces.value.find((n) => labelsOf(n)[LABEL_INJECT] === 'enabled' && !isExcluded(nameOf(n), opts.namespace));
    if (target) {
      const name = nameOf(target);
      let response: Read;
      try {
        response = toRead(await http.post(`/api/v1/namespaces/${encodeURIComponent(name)}/pods?dryRun=All`, dryRunPod()));
      } catch (err) {
        response = { ok: false, error: apiErrorMessage(err) };
      }
      facts.dryRun = { namespace: name, response };
    }
  }
  return facts;
}

export function isExcluded(namespace: string, own: string): boolean {
  return ['kube-system', 'kube-public', 'kube-node-lease', own].includes(namespace);
}

export { labelsOf };
