// What a kubelet and a container runtime would make of one container of an (injected) pod spec, as pure
// functions: its environment (downward API and $(VAR) expansion included), its argv, its user and
// capabilities, its mounts, and the shell script that sets all of that up inside the pod's namespace.
// The e2e harness runs that script with `ip netns exec`; these functions decide nothing else.

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: {
    fieldRef?: { fieldPath: string };
    resourceFieldRef?: { containerName?: string; resource: string; divisor?: string | number };
    secretKeyRef?: unknown;
    configMapKeyRef?: unknown;
  };
}

export interface VolumeMount {
  name: string;
  mountPath: string;
  readOnly?: boolean;
  subPath?: string;
}

export interface Probe {
  httpGet?: { path?: string; port: number | string; host?: string; scheme?: string };
  tcpSocket?: { port: number | string };
  exec?: { command: string[] };
  periodSeconds?: number;
  failureThreshold?: number;
}

export interface Container {
  name: string;
  image?: string;
  command?: string[];
  args?: string[];
  env?: EnvVar[];
  envFrom?: unknown[];
  ports?: Array<{ name?: string; containerPort: number }>;
  volumeMounts?: VolumeMount[];
  resources?: { limits?: Record<string, string | number>; requests?: Record<string, string | number> };
  restartPolicy?: string;
  startupProbe?: Probe;
  readinessProbe?: Probe;
  securityContext?: SecurityContext;
}

export interface SecurityContext {
  runAsUser?: number;
  runAsGroup?: number;
  runAsNonRoot?: boolean;
  allowPrivilegeEscalation?: boolean;
  privileged?: boolean;
  readOnlyRootFilesystem?: boolean;
  capabilities?: { add?: string[]; drop?: string[] };
}

export interface Volume {
  name: string;
  emptyDir?: { medium?: string; sizeLimit?: string };
  projected?: { sources: Array<{ serviceAccountToken?: { path: string; audience?: string; expirationSeconds?: number } } & Record<string, unknown>> };
  [kind: string]: unknown;
}

export interface Pod {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; uid?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec: {
    containers: Container[];
    initContainers?: Container[];
    volumes?: Volume[];
    serviceAccountName?: string;
    nodeName?: string;
    securityContext?: { runAsUser?: number; runAsGroup?: number; runAsNonRoot?: boolean };
  };
}

/** What the kubelet knows about the running pod and fills into the downward API. */
export interface PodRuntime {
  podIP: string;
  hostIP: string;
  nodeName: string;
  uid: string;
}

export class PodSpecError extends Error {
  override name = 'PodSpecError';
}

export function findContainer(pod: Pod, name: string): Container {
  const c = [...(pod.spec.initContainers ?? []), ...pod.spec.containers].find((x) => x.name === name);
  if (!c) {
    const names = [...(pod.spec.initContainers ?? []), ...pod.spec.containers].map((x) => x.name).join(', ');
    throw new PodSpecError(`pod ${pod.metadata.name} has no container "${name}" (it has: ${names})`);
  }
  return c;
}

/** Kubernetes' $(VAR) expansion: known names are replaced, $$ escapes, unknown references stay as written. */
export function expand(text: string, vars: Readonly<Record<string, string>>): string {
  return text.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (whole, name: string | undefined) => {
    if (name === undefined) return '$';
    return Object.hasOwn(vars, name) ? vars[name]! : whole;
  });
}

function fieldValue(pod: Pod, rt: PodRuntime, path: string): string {
  const indexed = /^metadata\.(labels|annotations)\['(.+)'\]$/.exec(path);
  if (indexed) return (pod.metadata[indexed[1] as 'labels' | 'annotations'] ?? {})[indexed[2]!] ?? '';
  switch (path) {
    case 'metadata.name':
      return pod.metadata.name;
    case 'metadata.namespace':
      return pod.metadata.namespace ?? 'default';
    case 'metadata.uid':
      return rt.uid;
    case 'spec.nodeName':
      return rt.nodeName;
    case 'spec.serviceAccountName':
      return pod.spec.serviceAccountName ?? 'default';
    case 'status.podIP':
    case 'status.podIPs':
      return rt.podIP;
    case 'status.hostIP':
    case 'status.hostIPs':
      return rt.hostIP;
    default:
      throw new PodSpecError(`fieldRef.fieldPath "${path}" is not one the downward API supports`);
  }
}

/** Parses a resource quantity (500m, 2, 128Mi, 1G) into base units (cores or bytes). */
export function quantity(q: string | number): number {
  if (typeof q === 'number') return q;
  const m = /^(\d+(?:\.\d+)?)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$/.exec(q.trim());
  if (!m) throw new PodSpecError(`"${q}" is not a resource quantity`);
  const scale: Record<string, number> = { m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4 };
  return Number(m[1]) * (m[2] ? scale[m[2]]! : 1);
}

/** The node's allocatable resources, used (as by the kubelet) when a container sets no limit. */
const NODE_ALLOCATABLE: Record<string, number> = { cpu: 2, memory: 4 * 1024 ** 3, 'ephemeral-storage': 20 * 1024 ** 3 };

function resourceValue(pod: Pod, self: Container, ref: NonNullable<NonNullable<EnvVar['valueFrom']>['resourceFieldRef']>): string {
  const c = ref.containerName ? findContainer(pod, ref.containerName) : self;
  const [kind, resource] = ref.resource.split('.') as [string, string | undefined];
  if ((kind !== 'limits' && kind !== 'requests') || !resource) {
    throw new PodSpecError(`resourceFieldRef.resource "${ref.resource}" must be limits.<name> or requests.<name>`);
  }
  const set = c.resources?.[kind]?.[resource];
  const value = set !== undefined ? quantity(set) : kind === 'limits' ? NODE_ALLOCATABLE[resource] ?? 0 : 0;
  const divisor = quantity(ref.divisor ?? 1);
  return String(Math.ceil(value / divisor));
}

/**
 * The container's environment as the kubelet builds it: `image` first (what the image's ENV sets, e.g. PATH),
 * then the spec's env in order, each value able to refer to the ones before it with $(NAME).
 */
export function containerEnv(pod: Pod, c: Container, rt: PodRuntime, image: Readonly<Record<string, string>> = {}): Record<string, string> {
  if (c.envFrom?.length) throw new PodSpecError(`container ${c.name}: envFrom is not supported by the e2e harness`);
  const env: Record<string, string> = { ...image };
  for (const v of c.env ?? []) {
    if (v.value !== undefined || !v.valueFrom) {
      env[v.name] = expand(v.value ?? '', env);
    } else if (v.valueFrom.fieldRef) {
      env[v.name] = fieldValue(pod, rt, v.valueFrom.fieldRef.fieldPath);
    } else if (v.valueFrom.resourceFieldRef) {
      env[v.name] = resourceValue(pod, c, v.valueFrom.resourceFieldRef);
    } else {
      throw new PodSpecError(`container ${c.name}: env ${v.name} uses a valueFrom the e2e harness cannot resolve (only fieldRef and resourceFieldRef)`);
    }
  }
  return env;
}

/** The argv the runtime executes: command (or the image's entrypoint) + args, with $(VAR) expanded. */
export function containerArgv(c: Container, env: Readonly<Record<string, string>>, entrypoint: Readonly<Record<string, readonly string[]>>): string[] {
  if (!c.command?.length) throw new PodSpecError(`container ${c.name} has no command; the harness needs an explicit one`);
  const [bin, ...rest] = c.command.map((s) => expand(s, env));
  const mapped = entrypoint[bin!];
  return [...(mapped ?? [bin!]), ...rest, ...(c.args ?? []).map((s) => expand(s, env))];
}

export interface Identity {
  uid: number;
  gid: number;
  /** Capabilities the process keeps (names without CAP_, lower case); only meaningful for uid 0. */
  caps: string[];
  noNewPrivs: boolean;
  /** The root filesystem is read-only; only the container's volumes are writable. */
  readOnlyRoot: boolean;
}

/** What a container runtime (containerd's defaults) grants a container that does not drop them. */
const RUNTIME_DEFAULT_CAPS = [
  'chown', 'dac_override', 'fsetid', 'fowner', 'mknod', 'net_raw', 'setgid', 'setuid', 'setfcap', 'setpcap',
  'net_bind_service', 'sys_chroot', 'kill', 'audit_write',
];

/** User, group and capabilities from the container's securityContext (falling back to the pod's, then root). */
export function containerIdentity(pod: Pod, c: Container): Identity {
  const sc = c.securityContext ?? {};
  const psc = pod.spec.securityContext ?? {};
  const uid = sc.runAsUser ?? psc.runAsUser ?? 0;
  const gid = sc.runAsGroup ?? psc.runAsGroup ?? uid;
  if ((sc.runAsNonRoot ?? psc.runAsNonRoot) && uid === 0) {
    throw new PodSpecError(`container ${c.name}: runAsNonRoot is set but it would run as UID 0 (the kubelet refuses to start it)`);
  }
  if (sc.privileged) throw new PodSpecError(`container ${c.name}: privileged containers are not played by the harness`);
  const norm = (xs: string[] | undefined): string[] => (xs ?? []).map((x) => x.toLowerCase().replace(/^cap_/, ''));
  const drop = norm(sc.capabilities?.drop);
  const add = norm(sc.capabilities?.add);
  const base = drop.includes('all') ? [] : RUNTIME_DEFAULT_CAPS.filter((x) => !drop.includes(x));
  const caps = [...new Set([...base, ...add])].sort();
  if (uid !== 0 && add.length > 0) {
    throw new PodSpecError(`container ${c.name}: adds capabilities (${add.join(', ')}) while running as UID ${uid}; the harness only plays that for root`);
  }
  return {
    uid,
    gid,
    caps: uid === 0 ? caps : [],
    noNewPrivs: sc.allowPrivilegeEscalation === false,
    readOnlyRoot: sc.readOnlyRootFilesystem === true,
  };
}

export interface Mount {
  /** Host directory or file holding the volume's content. */
  source: string;
  /** Where the container sees it. */
  target: string;
  readOnly: boolean;
}

/** The container's volume mounts, resolved to host paths by `volumeDir(volume)`. */
export function containerMounts(pod: Pod, c: Container, volumeDir: (v: Volume) => string): Mount[] {
  return (c.volumeMounts ?? []).map((m) => {
    const vol = (pod.spec.volumes ?? []).find((v) => v.name === m.name);
    if (!vol) throw new PodSpecError(`container ${c.name}: volumeMount "${m.name}" names no volume of the pod`);
    const dir = volumeDir(vol);
    return { source: m.subPath ? `${dir}/${m.subPath}` : dir, target: m.mountPath, readOnly: m.readOnly ?? false };
  });
}

export function shQuote(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Paths the harness may shadow with a private tmpfs to create mount points, as a container has its own /run. */
const SHADOWABLE = '/run';

/**
 * The script run (as root, inside `ip netns exec`, which already gives it a private mount namespace) to
 * start one container: mount its volumes, then drop to its user and capabilities and exec `argv` with
 * exactly `env`. `exists` says whether a path exists on the host (the only fact needed from outside).
 */
export function containerScript(opts: {
  mounts: readonly Mount[];
  identity: Identity;
  env: Readonly<Record<string, string>>;
  argv: readonly string[];
  cwd: string;
  exists: (path: string) => boolean;
  /** Where /var/run points on this host (usually /run). */
  realpath: (path: string) => string;
}): string {
  const lines = ['set -e'];
  const missing = opts.mounts.filter((m) => !opts.exists(m.target)).map((m) => m.target);
  for (const target of missing) {
    const real = opts.realpath(target);
    if (!real.startsWith(`${SHADOWABLE}/`)) {
      throw new PodSpecError(`mountPath ${target} does not exist on this host and is not under ${SHADOWABLE}; the harness will not create it on the host`);
    }
  }
  if (missing.length > 0) lines.push(`mount -t tmpfs -o mode=0755,size=16m aigress-e2e-run ${SHADOWABLE}`);
  for (const m of opts.mounts) {
    lines.push(`mkdir -p ${shQuote(m.target)}`);
    lines.push(`mount --bind ${shQuote(m.source)} ${shQuote(m.target)}`);
    if (m.readOnly) lines.push(`mount -o remount,bind,ro ${shQuote(m.target)}`);
  }
  const id = opts.identity;
  if (id.readOnlyRoot) {
    // Only this namespace's copies of the mounts change: the host's / stays writable. The volumes, mounted
    // on top, keep their own flags, as in a container.
    lines.push('mount -o remount,bind,ro /');
    if (missing.length > 0) lines.push(`mount -o remount,bind,ro ${SHADOWABLE}`);
  }
  lines.push(`cd ${shQuote(opts.cwd)}`);
  const setpriv = ['/usr/bin/setpriv', `--reuid=${id.uid}`, `--regid=${id.gid}`, '--clear-groups'];
  if (id.uid === 0) {
    // Root keeps only the capabilities the spec grants: the bounding set caps what exec hands the program.
    const set = ['-all', ...id.caps.map((c) => `+${c}`)].join(',');
    setpriv.push(`--bounding-set=${set}`, '--inh-caps=-all');
  }
  if (id.noNewPrivs) setpriv.push('--no-new-privs');
  const envArgs = Object.entries(opts.env).map(([k, v]) => `${k}=${v}`);
  const cmd = [...setpriv, '--', '/usr/bin/env', '-i', ...envArgs, ...opts.argv];
  lines.push(`exec ${cmd.map(shQuote).join(' ')}`);
  return lines.join('\n') + '\n';
}
