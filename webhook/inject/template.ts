import {
  CA_BUNDLE_DIR,
  ENV_CONTROL_PLANE_CA,
  ENV_POD_NAME,
  ENV_POD_NAMESPACE,
  ENV_SERVICE_ACCOUNT,
  ENV_WORKLOAD,
  INIT_CONTAINER_NAME,
  PROXY_CONTAINER_NAME,
  TOKEN_AUDIENCE,
  TOKEN_DIR,
  TOKEN_FILE,
} from '../../shared/constants.js';
import type { InjectionConfig, ResourceList, ResourceRequirements } from '../config.js';
import type { PodOverrides } from './annotations.js';
import { formatPort, mergePorts } from '../../shared/capture.js';
import type { Mesh } from './mesh.js';
import { parseQuantity } from './quantity.js';
import { telemetryEnv } from './telemetry-env.js';
import type { Container, EnvVar, Volume } from './types.js';

// The containers and volumes aigress adds, as pure functions of the config and the pod's overrides.

export const CA_VOLUME = 'aigress-ca';
/** The operator's extra trust roots (a ConfigMap), mounted into the proxy only. */
export const EXTRA_CA_VOLUME = 'aigress-extra-ca';
export const EXTRA_CA_DIR = '/etc/aigress/extra-ca';
const EXTRA_CA_FILE = 'ca.crt';

/** The extra-roots volume when the config names a ConfigMap. Not optional: a missing one shows as a mount event. */
export function extraCaVolume(config: InjectionConfig): Volume | undefined {
  const cm = config.proxy.extraCaConfigMap;
  if (cm.name === '') return undefined;
  return { name: EXTRA_CA_VOLUME, configMap: { name: cm.name, items: [{ key: cm.key, path: EXTRA_CA_FILE }] } };
}
export const TOKEN_VOLUME = 'aigress-token';
/** aigress-init's only writable path: /run, where iptables-legacy takes its xtables lock. */
export const INIT_RUN_VOLUME = 'aigress-init-run';
/** The projected token's lifetime; the kubelet refreshes it at 80%, the proxy rereads the file. */
export const TOKEN_EXPIRATION_SECONDS = 3600;
/** How long the `nativeSidecar: never` postStart hook waits for the proxy before the kubelet restarts it. */
export const WAIT_READY_SECONDS = 120;

/** A file audit log's writable directory (the proxy's root filesystem is read-only); docs/audit.md. */
export const AUDIT_VOLUME = 'aigress-audit';

/** The directory of injection.proxy.telemetry.auditLog when it is a file (config.ts checked it is absolute). */
export function auditLogDir(config: InjectionConfig): string | undefined {
  const a = config.proxy.telemetry.auditLog;
  if (!a.startsWith('/')) return undefined;
  return a.slice(0, a.lastIndexOf('/'));
}

/** The audit volume, when the audit log is a file: an emptyDir a log shipper (a sidecar, a node agent) reads. */
export function auditVolume(config: InjectionConfig): Volume | undefined {
  return auditLogDir(config) === undefined ? undefined : { name: AUDIT_VOLUME, emptyDir: {} };
}

export function caVolume(): Volume {
  return { name: CA_VOLUME, emptyDir: {} };
}

export function initRunVolume(): Volume {
  return { name: INIT_RUN_VOLUME, emptyDir: { medium: 'Memory', sizeLimit: '1Mi' } };
}

export function tokenVolume(): Volume {
  return {
    name: TOKEN_VOLUME,
    projected: {
      sources: [{ serviceAccountToken: { audience: TOKEN_AUDIENCE, expirationSeconds: TOKEN_EXPIRATION_SECONDS, path: TOKEN_FILE } }],
    },
  };
}

/** The read-only CA bundle mount every app container and every later init container gets. */
export function appCaMount(): { name: string; mountPath: string; readOnly: true } {
  return { name: CA_VOLUME, mountPath: CA_BUNDLE_DIR, readOnly: true };
}

function resources(r: ResourceRequirements): Record<string, ResourceList> {
  const out: Record<string, ResourceList> = {};
  if (Object.keys(r.requests).length > 0) out.requests = { ...r.requests };
  if (Object.keys(r.limits).length > 0) out.limits = { ...r.limits };
  return out;
}

/**
 * The proxy's resources: the config's, with `aigress.io/proxy-cpu` / `proxy-memory` setting the request. A limit
 * below the new request is raised to it, since the API server rejects a request above its limit.
 */
export function proxyResources(config: InjectionConfig, o: PodOverrides): ResourceRequirements {
  const r: ResourceRequirements = {
    requests: { ...config.proxy.resources.requests },
    limits: { ...config.proxy.resources.limits },
  };
  for (const [k, v] of [
    ['cpu', o.proxyCpu],
    ['memory', o.proxyMemory],
  ] as const) {
    if (v === undefined) continue;
    r.requests[k] = v;
    const lim = r.limits[k];
    if (lim !== undefined && parseQuantity(lim)! < parseQuantity(v)!) r.limits[k] = v;
  }
  return r;
}

/** What injection decided about the pod beyond its annotations: its mesh, its owning workload. */
export interface PodFacts {
  meshes: readonly Mesh[];
  workload?: string;
}

/** The Kubernetes API Service address as a CIDR to leave out of capture, or undefined when not excluded. */
export function kubernetesApiCidr(config: InjectionConfig): string | undefined {
  const a = config.capture.kubernetesApiAddress;
  if (!config.capture.excludeKubernetesApi || a === '') return undefined;
  return a.includes(':') ? `${a}/128` : `${a}/32`;
}

/** Arguments of `aigress init`: every scalar flag always, list flags when non-empty, in a fixed order. */
export function initArgs(config: InjectionConfig, o: PodOverrides, facts: PodFacts = { meshes: [] }): string[] {
  const c = config.capture;
  const include = mergePorts(c.includeOutboundPorts, o.includePorts);
  const exclude = mergePorts(c.excludeOutboundPorts, o.excludePorts);
  const api = kubernetesApiCidr(config);
  const cidrs = [...new Set([...(api ? [api] : []), ...c.excludeOutboundCidrs, ...o.excludeCidrs])];
  const uids = [...new Set(facts.meshes.map((m) => m.uid))].sort((a, b) => a - b);
  const args = [
    'init',
    '--proxy-uid',
    String(config.proxy.uid),
    '--proxy-gid',
    String(config.proxy.gid),
    '--capture-port',
    String(config.proxy.capturePort),
    '--include-outbound-ports',
    include.map(formatPort).join(','),
  ];
  if (exclude.length > 0) args.push('--exclude-outbound-ports', exclude.map(formatPort).join(','));
  if (cidrs.length > 0) args.push('--exclude-outbound-cidrs', cidrs.join(','));
  if (uids.length > 0) args.push('--exclude-uids', uids.join(','));
  args.push('--ipv6', c.ipv6, '--iptables-mode', c.iptablesMode);
  return args;
}

export function initContainer(config: InjectionConfig, o: PodOverrides, facts?: PodFacts): Container {
  return {
    name: INIT_CONTAINER_NAME,
    image: config.image,
    imagePullPolicy: config.imagePullPolicy,
    command: ['aigress'],
    args: initArgs(config, o, facts),
    resources: resources(config.init.resources),
    // Root, because writing iptables rules needs it; with only the two network capabilities and nothing else.
    securityContext: {
      runAsUser: 0,
      runAsGroup: 0,
      runAsNonRoot: false,
      privileged: false,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
    volumeMounts: [{ name: INIT_RUN_VOLUME, mountPath: '/run' }],
    terminationMessagePolicy: 'FallbackToLogsOnError',
  };
}

export function proxyArgs(config: InjectionConfig): string[] {
  const args = [
    'proxy',
    '--capture-port',
    String(config.proxy.capturePort),
    '--admin-port',
    String(config.proxy.adminPort),
    '--bundle-dir',
    CA_BUNDLE_DIR,
    '--token-file',
    `${TOKEN_DIR}/${TOKEN_FILE}`,
  ];
  if (config.controlPlane.address !== '') args.push('--control-plane', config.controlPlane.address);
  if (config.proxy.extraCaConfigMap.name !== '') args.push('--extra-ca-file', `${EXTRA_CA_DIR}/${EXTRA_CA_FILE}`);
  if (config.budgets.redisUrl !== '') args.push('--redis-url', config.budgets.redisUrl);
  return [...args, ...config.proxy.extraArgs];
}

function proxyEnv(config: InjectionConfig, facts: PodFacts): EnvVar[] {
  const env: EnvVar[] = [
    { name: ENV_POD_NAME, valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
    { name: ENV_POD_NAMESPACE, valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
    { name: ENV_SERVICE_ACCOUNT, valueFrom: { fieldRef: { fieldPath: 'spec.serviceAccountName' } } },
  ];
  // The downward API has no field for the owner: the value is written here, from the owner references.
  if (facts.workload !== undefined) env.push({ name: ENV_WORKLOAD, value: facts.workload });
  env.push(...telemetryEnv(config.proxy.telemetry));
  // Shared budgets' Redis password: from a Secret in the pod's namespace, never in the pod spec itself.
  const secret = config.budgets.passwordSecret;
  if (config.budgets.redisUrl !== '' && secret.name !== '') {
    env.push({ name: 'AIGRESS_REDIS_PASSWORD', valueFrom: { secretKeyRef: { name: secret.name, key: secret.key } } });
  }
  // Cluster mode: the CA certificate (public) the proxy verifies the control plane with. Never a key.
  if (config.controlPlane.address !== '' && config.controlPlane.caPem) env.push({ name: ENV_CONTROL_PLANE_CA, value: config.controlPlane.caPem });
  return env;
}

/**
 * A postStart hook that holds the kubelet (which starts containers one by one and waits for each hook) until the
 * proxy answers /readyz, so the app containers after it start with capture working. The image runs on Node.js, so
 * `node -e` is there even when there is no shell.
 */
export function waitReadyScript(adminPort: number): string {
  return [
    `const h=require("http"),d=Date.now()+${WAIT_READY_SECONDS * 1000};`,
    'function w(){Date.now()>d?process.exit(1):setTimeout(t,250)}',
    `function t(){h.get("http://127.0.0.1:${adminPort}/readyz",r=>{r.resume();r.statusCode===200?process.exit(0):w()}).on("error",w)}`,
    't()',
  ].join('');
}

/** The proxy container: a native sidecar (restartPolicy: Always) or, for `never`, a regular container. */
export function proxyContainer(config: InjectionConfig, o: PodOverrides, native: boolean, facts: PodFacts = { meshes: [] }): Container {
  const port = config.proxy.adminPort;
  const auditDir = auditLogDir(config);
  const httpGet = (path: string): Record<string, unknown> => ({ httpGet: { path, port } });
  const c: Container = {
    name: PROXY_CONTAINER_NAME,
    image: config.image,
    imagePullPolicy: config.imagePullPolicy,
    command: ['aigress'],
    args: proxyArgs(config),
  };
  if (native) c.restartPolicy = 'Always';
  Object.assign(c, {
    env: proxyEnv(config, facts),
    ports: [{ name: 'aigress-admin', containerPort: port, protocol: 'TCP' }],
    // Readiness means "CA bundle written, listener up": the kubelet starts the next container only after this.
    startupProbe: { ...httpGet('/readyz'), periodSeconds: 1, timeoutSeconds: 1, failureThreshold: WAIT_READY_SECONDS },
    readinessProbe: { ...httpGet('/readyz'), periodSeconds: 5, timeoutSeconds: 1, failureThreshold: 3 },
    livenessProbe: { ...httpGet('/healthz'), periodSeconds: 10, timeoutSeconds: 1, failureThreshold: 3 },
    resources: resources(proxyResources(config, o)),
    securityContext: {
      runAsUser: config.proxy.uid,
      runAsGroup: config.proxy.gid,
      runAsNonRoot: true,
      privileged: false,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
    volumeMounts: [
      // Read-write: the proxy writes bundle.pem and truststore.p12 here for the apps.
      { name: CA_VOLUME, mountPath: CA_BUNDLE_DIR },
      { name: TOKEN_VOLUME, mountPath: TOKEN_DIR, readOnly: true },
      ...(config.proxy.extraCaConfigMap.name === '' ? [] : [{ name: EXTRA_CA_VOLUME, mountPath: EXTRA_CA_DIR, readOnly: true }]),
      // Read-write: the audit log file (AIGRESS_AUDIT_LOG), the only other path the proxy writes.
      ...(auditDir === undefined ? [] : [{ name: AUDIT_VOLUME, mountPath: auditDir }]),
    ],
    terminationMessagePolicy: 'FallbackToLogsOnError',
  });
  if (!native) c.lifecycle = { postStart: { exec: { command: ['node', '-e', waitReadyScript(port)] } } };
  return c;
}
