import type { Pod } from './types.js';

// The workload a pod belongs to, as `kind/name` in kubectl's spelling (`deployment/checkout`), for the proxy's
// identity (budget scope `workload`, the `source_workload` label). Derived from the pod's controller owner
// reference at admission, climbing the one level the API server does not show: a ReplicaSet made by a
// Deployment, a Job made by a CronJob. Pure.

interface OwnerReference {
  kind?: unknown;
  name?: unknown;
  controller?: unknown;
}

/** A Deployment names its ReplicaSets `<deployment>-<pod-template-hash>`; the hash is also the pods' label. */
function deploymentOf(rsName: string, pod: Pod): string | undefined {
  const hash = pod.metadata?.labels?.['pod-template-hash'];
  if (hash && rsName.endsWith(`-${hash}`) && rsName.length > hash.length + 1) return rsName.slice(0, -(hash.length + 1));
  return undefined;
}

/** A CronJob names its Jobs `<cronjob>-<scheduled time in minutes since the epoch>`. */
function cronJobOf(jobName: string): string | undefined {
  const m = /^(.+)-\d{8,}$/.exec(jobName);
  return m?.[1];
}

export function workloadOf(pod: Pod): string | undefined {
  const refs = pod.metadata?.ownerReferences;
  if (!Array.isArray(refs)) return undefined;
  const owner = (refs as OwnerReference[]).find((r) => r.controller === true) ?? (refs.length === 1 ? (refs[0] as OwnerReference) : undefined);
  if (!owner || typeof owner.kind !== 'string' || typeof owner.name !== 'string' || owner.name === '') return undefined;
  const { kind, name } = owner;
  if (kind === 'ReplicaSet') {
    const d = deploymentOf(name, pod);
    return d ? `deployment/${d}` : `replicaset/${name}`;
  }
  if (kind === 'Job') {
    const c = cronJobOf(name);
    return c ? `cronjob/${c}` : `job/${name}`;
  }
  return `${kind.toLowerCase()}/${name}`;
}

/** The workload of a pod template inside a manifest (`aigress inject`): the object that holds the template. */
export function workloadOfManifest(kind: string, name: string | undefined): string | undefined {
  if (kind === 'Pod' || name === undefined || name === '') return undefined;
  return `${kind.toLowerCase()}/${name}`;
}
