// The Pod Security Standards `restricted` profile (latest), as the PodSecurity admission plugin checks it
// (https://kubernetes.io/docs/concepts/security/pod-security-standards/), over a pod spec. Returns every
// violation, so a test can both assert "none" and see that a bad spec is caught.

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const obj = (v: unknown): Obj => (isObj(v) ? v : {});

const ALLOWED_VOLUMES = ['configMap', 'csi', 'downwardAPI', 'emptyDir', 'ephemeral', 'persistentVolumeClaim', 'projected', 'secret'];
const SAFE_SYSCTLS = [
  'kernel.shm_rmid_forced',
  'net.ipv4.ip_local_port_range',
  'net.ipv4.ip_unprivileged_port_start',
  'net.ipv4.tcp_syncookies',
  'net.ipv4.ping_group_range',
  'net.ipv4.ip_local_reserved_ports',
  'net.ipv4.tcp_keepalive_time',
  'net.ipv4.tcp_fin_timeout',
  'net.ipv4.tcp_keepalive_intvl',
  'net.ipv4.tcp_keepalive_probes',
];

export function restrictedViolations(spec: Obj): string[] {
  const v: string[] = [];
  const psc = obj(spec.securityContext);
  for (const k of ['hostNetwork', 'hostPID', 'hostIPC']) if (spec[k] === true) v.push(`${k}: true`);
  for (const vol of (spec.volumes as Obj[] | undefined) ?? []) {
    const type = Object.keys(vol).find((k) => k !== 'name');
    if (!type || !ALLOWED_VOLUMES.includes(type)) v.push(`volume ${String(vol.name)}: type ${String(type)} not allowed`);
  }
  for (const s of (obj(psc).sysctls as Obj[] | undefined) ?? []) if (!SAFE_SYSCTLS.includes(String(s.name))) v.push(`sysctl ${String(s.name)}`);
  const seLinuxOk = (sc: Obj): boolean => {
    const t = obj(sc.seLinuxOptions).type;
    return (t === undefined || ['', 'container_t', 'container_init_t', 'container_kvm_t', 'container_engine_t'].includes(String(t))) &&
      obj(sc.seLinuxOptions).user === undefined && obj(sc.seLinuxOptions).role === undefined;
  };
  if (!seLinuxOk(psc)) v.push('pod seLinuxOptions');
  if (psc.runAsUser === 0) v.push('pod runAsUser: 0');
  const podSeccomp = obj(psc.seccompProfile).type;
  if (podSeccomp !== undefined && !['RuntimeDefault', 'Localhost'].includes(String(podSeccomp))) v.push(`pod seccompProfile ${String(podSeccomp)}`);
  const all = [
    ...((spec.initContainers as Obj[] | undefined) ?? []),
    ...((spec.containers as Obj[] | undefined) ?? []),
    ...((spec.ephemeralContainers as Obj[] | undefined) ?? []),
  ];
  for (const c of all) {
    const sc = obj(c.securityContext);
    const n = `container ${String(c.name)}`;
    if (sc.privileged === true) v.push(`${n}: privileged`);
    if (sc.allowPrivilegeEscalation !== false) v.push(`${n}: allowPrivilegeEscalation must be false`);
    const caps = obj(sc.capabilities);
    if (!((caps.drop as string[] | undefined) ?? []).includes('ALL')) v.push(`${n}: capabilities must drop ALL`);
    for (const a of (caps.add as string[] | undefined) ?? []) if (a !== 'NET_BIND_SERVICE') v.push(`${n}: adds capability ${a}`);
    if ((sc.runAsNonRoot ?? psc.runAsNonRoot) !== true) v.push(`${n}: runAsNonRoot must be true`);
    if (sc.runAsUser === 0) v.push(`${n}: runAsUser 0`);
    const seccomp = obj(sc.seccompProfile).type ?? podSeccomp;
    if (!['RuntimeDefault', 'Localhost'].includes(String(seccomp))) v.push(`${n}: seccompProfile must be RuntimeDefault or Localhost`);
    if (sc.procMount !== undefined && sc.procMount !== 'Default') v.push(`${n}: procMount ${String(sc.procMount)}`);
    if (!seLinuxOk(sc)) v.push(`${n}: seLinuxOptions`);
    for (const p of (c.ports as Obj[] | undefined) ?? []) if (p.hostPort !== undefined && p.hostPort !== 0) v.push(`${n}: hostPort ${String(p.hostPort)}`);
  }
  return v;
}
