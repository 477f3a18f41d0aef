import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { httpsCall } from '../../../cli/demo/https-client.js';
import { FakeApiServer } from '../../support/fake-apiserver.js';
import { writeKubeconfig } from '../../support/kubeconfig.js';
import { BIN, ROOT } from '../inject/built-cli.js';
import { find, NAMESPACE, type K8sObject } from './render.js';
import { webhookCalled, type AdmissionAttributes, type Labels } from './selectors.js';
import { review as reviewFor } from '../../support/admission-review.js';

// The cluster side of the admission harness (ARCHITECTURE.md, test layer 2), played from what `helm template`
// rendered: the fake API server holds the rendered MutatingWebhookConfiguration; a "kubelet" materializes the
// Deployment's ConfigMap/Secret mounts in a temp dir and runs the built `aigress` with the Deployment's own
// arguments; an "API server" decides from the rendered rules and selectors whether to call the webhook, resolves
// clientConfig.service to the process, and verifies TLS against the caBundle.

type Obj = Record<string, unknown>;

interface Container {
  args: string[];
  env?: Array<{ name: string; value: string }>;
  volumeMounts: Array<{ name: string; mountPath: string }>;
}

export interface ChartCluster {
  api: FakeApiServer;
  objects: K8sObject[];
  port: number;
  output(): string;
  /** The webhook configuration as it is now in the API server (after the control plane patched it). */
  mwc(): Obj & { webhooks: Array<Obj & { clientConfig: Obj & { caBundle?: string; service: { name: string; namespace: string; path: string; port: number } } }> };
  /** GET on the control plane's HTTPS port, verified against the caBundle, as a proxy would. */
  get(path: string, headers?: Record<string, string>): Promise<{ status: number; body: string }>;
  stop(): Promise<number | null>;
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

export const caBundlePem = (mwc: ReturnType<ChartCluster['mwc']>): string | undefined => {
  const b = mwc.webhooks[0]?.clientConfig.caBundle;
  return b ? Buffer.from(b, 'base64').toString() : undefined;
};

/**
 * Starts the control plane the way the rendered Deployment would in a pod. `secrets` provides the data of
 * Secret volumes (what cert-manager would have issued). `setup` seeds the API server before the start.
 */
export async function startFromChart(
  objects: K8sObject[],
  opts: { secrets?: Record<string, Record<string, string>>; setup?: (api: FakeApiServer) => void } = {},
): Promise<ChartCluster> {
  const api = await FakeApiServer.start({ bookmarkIntervalMs: 500 });
  api.put('v1', 'namespaces', { metadata: { name: NAMESPACE, labels: { 'kubernetes.io/metadata.name': NAMESPACE } } });
  api.put('admissionregistration.k8s.io/v1', 'mutatingwebhookconfigurations', structuredClone(find(objects, 'MutatingWebhookConfiguration')));
  opts.setup?.(api);

  const root = await mkdtemp(join(tmpdir(), 'aigress-chart-pod-'));
  const deployment = find(objects, 'Deployment') as K8sObject & { spec: { template: { spec: { containers: Container[]; volumes: Obj[] } } } };
  const podSpec = deployment.spec.template.spec;
  const container = podSpec.containers[0]!;
  // the kubelet's part: each mount's volume, materialized at root + mountPath
  for (const m of container.volumeMounts) {
    const dir = join(root, m.mountPath);
    await mkdir(dir, { recursive: true });
    const v = podSpec.volumes.find((x) => x.name === m.name)!;
    let data: Record<string, string> = {};
    if (v.configMap) data = find(objects, 'ConfigMap', (v.configMap as { name: string }).name).data as Record<string, string>;
    else if (v.secret) {
      const s = v.secret as { secretName: string; items?: Array<{ key: string; path: string }> };
      const secret = opts.secrets?.[s.secretName];
      if (!secret) throw new Error(`the test provides no Secret ${s.secretName} for volume ${m.name}`);
      data = s.items ? Object.fromEntries(s.items.map((i) => [i.path, secret[i.key]!])) : secret;
    } else if (!v.emptyDir) throw new Error(`volume ${m.name}: the test's kubelet does not know its type`);
    for (const [k, text] of Object.entries(data)) await writeFile(join(dir, k), text);
  }
  // the container's own paths become the temp dir's
  const mounts = [...container.volumeMounts].sort((a, b) => b.mountPath.length - a.mountPath.length);
  const args = container.args.map((a) => {
    // `--flag=/mount/path[/file]` or a bare path argument
    const value = a.startsWith('--') && a.includes('=') ? a.slice(a.indexOf('=') + 1) : a;
    const m = mounts.find((x) => value === x.mountPath || value.startsWith(`${x.mountPath}/`));
    return m ? a.slice(0, a.length - value.length) + join(root, value) : a;
  });

  const kubeconfig = join(root, 'kubeconfig');
  await writeKubeconfig(kubeconfig, api, 'aigress');
  const port = await freePort();
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH };
  for (const e of container.env ?? []) env[e.name] = e.value;
  // --kubeconfig stands for the in-cluster ServiceAccount; --port/--host for the pod's own network
  const child: ChildProcess = spawn(process.execPath, [BIN, ...args, '--kubeconfig', kubeconfig, '--port', String(port), '--host', '127.0.0.1'], { cwd: ROOT, env });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | null>((r) => child.on('close', r));

  const mwc = (): ReturnType<ChartCluster['mwc']> => api.get('admissionregistration.k8s.io/v1', 'mutatingwebhookconfigurations', undefined, 'aigress') as never;
  const stop = async (): Promise<number | null> => {
    if (child.exitCode === null) child.kill('SIGTERM');
    const code = await exited;
    await api.close();
    await rm(root, { recursive: true, force: true });
    return code;
  };
  try {
    for (let i = 0; i < 400 && !out.includes('webhook listening') && child.exitCode === null; i++) await new Promise((r) => setTimeout(r, 50));
    if (!out.includes('webhook listening')) throw new Error(`the control plane did not start: ${out}`);
    for (let i = 0; i < 200 && !caBundlePem(mwc()); i++) await new Promise((r) => setTimeout(r, 50));
    if (!caBundlePem(mwc())) throw new Error(`the control plane wrote no caBundle: ${out}`);
  } catch (err) {
    await stop();
    throw err;
  }
  const cluster: ChartCluster = {
    api,
    objects,
    port,
    output: () => out,
    mwc,
    get: (path, headers = {}) => {
      const svc = mwc().webhooks[0]!.clientConfig.service;
      return httpsCall({ port, servername: `${svc.name}.${svc.namespace}.svc`, ca: caBundlePem(mwc())!, method: 'GET', path, headers });
    },
    stop,
  };
  return cluster;
}

export interface Admission {
  /** Whether the API server sent the request to the webhook at all. */
  called: boolean;
  allowed?: boolean;
  /** The JSONPatch operations returned (empty when none). */
  patch: Array<{ op: string; path: string; value?: unknown }>;
  warnings?: string[];
}

/**
 * kube-apiserver's side of one admission: rules + selectors from the MutatingWebhookConfiguration now in the API
 * server decide whether to call; clientConfig.service `{name}.{namespace}.svc:{port}` is resolved to the
 * control plane's loopback port (the Service's 443 → the pod's 8443) and TLS is verified against its caBundle.
 */
export async function admit(
  cluster: ChartCluster,
  pod: Obj & { metadata: { name: string; labels?: Labels } },
  ns: { name: string; labels?: Labels },
  operation: AdmissionAttributes['operation'] = 'CREATE',
  caOverride?: string,
): Promise<Admission> {
  const w = cluster.mwc().webhooks[0]!;
  const attrs: AdmissionAttributes = { operation, group: '', version: 'v1', resource: 'pods', namespaced: true };
  if (!webhookCalled(w as never, attrs, ns, pod.metadata.labels ?? {})) return { called: false, patch: [] };
  const svc = w.clientConfig.service;
  const review = reviewFor(pod, { uid: '7f0c54e2-1c2d-4c36-9f1e-000000000001', name: pod.metadata.name, namespace: ns.name, operation });
  const res = await httpsCall({
    port: cluster.port,
    servername: `${svc.name}.${svc.namespace}.svc`,
    ca: caOverride ?? caBundlePem(cluster.mwc())!,
    method: 'POST',
    path: svc.path,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(review),
  });
  if (res.status !== 200) throw new Error(`webhook answered ${res.status}: ${res.body}`);
  const r = (JSON.parse(res.body) as { response: { uid: string; allowed: boolean; patchType?: string; patch?: string; warnings?: string[] } }).response;
  if (r.uid !== review.request.uid) throw new Error('the response does not carry the request uid');
  if (r.patch !== undefined && r.patchType !== 'JSONPatch') throw new Error(`patchType ${r.patchType}`);
  return {
    called: true,
    allowed: r.allowed,
    patch: r.patch ? (JSON.parse(Buffer.from(r.patch, 'base64').toString()) as Admission['patch']) : [],
    warnings: r.warnings,
  };
}
