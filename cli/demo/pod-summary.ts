import type { Container, EnvVar, Pod, Volume } from '../../webhook/inject/types.js';

// What injection added to a pod, read by comparing the pod before and after the patch (pure), so the demo shows
// the API server's result rather than what the injection code meant to do.

export interface AddedContainer {
  name: string;
  args: string[];
  /** `Always` on an init container: a native sidecar (Kubernetes ≥ 1.29). */
  restartPolicy?: string;
  runAsUser?: number;
}

export interface AddedEnv {
  container: string;
  name: string;
  /** The literal value, or how it is sourced (`fieldRef metadata.name`). */
  value: string;
}

export interface InjectedPodSummary {
  initContainers: AddedContainer[];
  containers: AddedContainer[];
  env: AddedEnv[];
  mounts: { container: string; name: string; mountPath: string; readOnly: boolean }[];
  volumes: { name: string; kind: string }[];
  annotations: Record<string, string>;
}

const names = <T extends { name: string }>(list: readonly T[] | undefined): Set<string> => new Set((list ?? []).map((x) => x.name));

function added(c: Container): AddedContainer {
  const a: AddedContainer = { name: c.name, args: Array.isArray(c.args) ? c.args.map(String) : [] };
  if (c.restartPolicy !== undefined) a.restartPolicy = c.restartPolicy;
  if (c.securityContext?.runAsUser !== undefined) a.runAsUser = c.securityContext.runAsUser;
  return a;
}

function envValue(e: EnvVar): string {
  if (e.value !== undefined) return e.value;
  const [source, ref] = Object.entries(e.valueFrom ?? {})[0] ?? ['', {}];
  const detail = typeof ref === 'object' && ref !== null ? Object.values(ref).map(String).join(' ') : '';
  return `${source} ${detail}`.trim();
}

function volumeKind(v: Volume): string {
  return Object.keys(v).find((k) => k !== 'name') ?? 'unknown';
}

export function summarizeInjection(before: Pod, after: Pod): InjectedPodSummary {
  const oldInit = names(before.spec.initContainers);
  const oldContainers = names(before.spec.containers);
  const oldVolumes = names(before.spec.volumes);
  const summary: InjectedPodSummary = {
    initContainers: (after.spec.initContainers ?? []).filter((c) => !oldInit.has(c.name)).map(added),
    containers: after.spec.containers.filter((c) => !oldContainers.has(c.name)).map(added),
    env: [],
    mounts: [],
    volumes: (after.spec.volumes ?? []).filter((v) => !oldVolumes.has(v.name)).map((v) => ({ name: v.name, kind: volumeKind(v) })),
    annotations: {},
  };
  // Changes to the pod's own containers: env vars and mounts they did not have.
  for (const c of after.spec.containers) {
    const was = before.spec.containers.find((b) => b.name === c.name);
    if (!was) continue;
    const oldEnv = new Map((was.env ?? []).map((e) => [e.name, envValue(e)]));
    for (const e of c.env ?? []) {
      const value = envValue(e);
      if (oldEnv.get(e.name) !== value) summary.env.push({ container: c.name, name: e.name, value });
    }
    const oldMounts = new Set((was.volumeMounts ?? []).map((m) => `${m.name}:${m.mountPath}`));
    for (const m of c.volumeMounts ?? []) {
      if (!oldMounts.has(`${m.name}:${m.mountPath}`)) summary.mounts.push({ container: c.name, name: m.name, mountPath: m.mountPath, readOnly: m.readOnly === true });
    }
  }
  const oldAnnotations = before.metadata?.annotations ?? {};
  for (const [k, v] of Object.entries(after.metadata?.annotations ?? {})) {
    if (oldAnnotations[k] !== v) summary.annotations[k] = v;
  }
  return summary;
}
