import { ANNOTATION_INJECT, INIT_CONTAINER_NAME, LABEL_INJECT, PROXY_CONTAINER_NAME, SYSTEM_NAMESPACES } from '../../shared/constants.js';
import type { InjectionConfig } from '../config.js';
import type { Container, Pod } from './types.js';

// Which pods aigress leaves alone, and which it refuses. Pure functions of the pod, its namespace and the config.

export type SkipCode = 'host-network' | 'windows' | 'system-namespace' | 'opt-out-label' | 'opt-out-annotation';

export interface Skip {
  code: SkipCode;
  message: string;
}

/** Why the pod must not be injected at all, or undefined. Checked before anything else, so a skipped pod is never denied. */
export function skipReason(pod: Pod, namespace: string, config: InjectionConfig): Skip | undefined {
  if (pod.spec.hostNetwork === true) {
    return { code: 'host-network', message: 'hostNetwork: true (iptables rules would capture the node\'s traffic)' };
  }
  if (pod.spec.os?.name === 'windows') return { code: 'windows', message: 'Windows pod (capture needs Linux iptables)' };
  if (SYSTEM_NAMESPACES.includes(namespace)) return { code: 'system-namespace', message: `${namespace} is a system namespace` };
  if (namespace === config.controlPlane.namespace) {
    return { code: 'system-namespace', message: `${namespace} is the aigress control plane's own namespace` };
  }
  if (pod.metadata?.labels?.[LABEL_INJECT] === 'disabled') {
    return { code: 'opt-out-label', message: `label ${LABEL_INJECT}=disabled` };
  }
  if (pod.metadata?.annotations?.[ANNOTATION_INJECT] === 'false') {
    return { code: 'opt-out-annotation', message: `annotation ${ANNOTATION_INJECT}: "false"` };
  }
  return undefined;
}

export const isAigressContainer = (c: Container): boolean => c.name === INIT_CONTAINER_NAME || c.name === PROXY_CONTAINER_NAME;

/** A pod that already has either aigress container is injected; adding them again would duplicate names. */
export function isInjected(pod: Pod): boolean {
  return [...(pod.spec.initContainers ?? []), ...pod.spec.containers].some(isAigressContainer);
}

/**
 * Capture exempts the proxy's UID and its primary GID (iptables --uid-owner / --gid-owner), so any other container
 * running as either would bypass it unseen. aigress denies such a pod rather than moving the proxy to another
 * UID: the UID an image runs as without a runAsUser is invisible to the webhook, so no "free" UID can be chosen
 * safely, and a denial is visible and easy to fix.
 */
export function identityConflict(pod: Pod, proxy: { uid: number; gid: number }): string | undefined {
  const podSc = pod.spec.securityContext;
  for (const c of [...(pod.spec.initContainers ?? []), ...pod.spec.containers]) {
    if (isAigressContainer(c)) continue;
    for (const [field, id, what] of [
      ['runAsUser', proxy.uid, 'UID'],
      ['runAsGroup', proxy.gid, 'GID'],
    ] as const) {
      const own = c.securityContext?.[field] ?? undefined;
      if ((own ?? podSc?.[field] ?? undefined) !== id) continue;
      const source = own === undefined ? ` (from the pod's securityContext.${field})` : '';
      return (
        `container "${c.name}" runs as ${what} ${id}${source}, the aigress proxy's ${what}, so its traffic would bypass capture: ` +
        `run it as another ${what}, or opt the pod out with annotation ${ANNOTATION_INJECT}: "false"`
      );
    }
  }
  return undefined;
}
