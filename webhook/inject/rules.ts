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

/** Capabilities with which a container can leave capture: rewrite the pod's iptables rules, or send raw packets past them. */
export const ESCAPING_CAPABILITIES = ['NET_ADMIN', 'NET_RAW'] as const;

export type EscapeKind = 'identity' | 'capability';

/** A container of the pod that could send traffic past capture, and the field that says so. */
export interface CaptureEscape {
  kind: EscapeKind;
  container: string;
  /** The container's field (or the pod's, when inherited) that gives it away, e.g. `securityContext.capabilities.add`. */
  field: string;
  message: string;
}

const OPT_OUT = `or opt the pod out with annotation ${ANNOTATION_INJECT}: "false"`;

/** `cap_net_admin`, `CAP_NET_ADMIN` and `NET_ADMIN` are one capability to container runtimes. */
const capName = (c: string): string => c.trim().toUpperCase().replace(/^CAP_/, '');

/**
 * Every app container (init containers too: with NET_ADMIN one could delete the rules before the app starts) that
 * could send traffic past capture, in pod order. Pure; only what the pod spec says is seen:
 *
 * - UID / primary GID: capture exempts the proxy's UID and its primary GID (iptables --uid-owner / --gid-owner), so
 *   a container running as either bypasses it unseen. Such a pod is refused rather than the proxy moved to another
 *   UID: the UID an image runs as without a runAsUser is invisible to the webhook, so no "free" UID can be chosen
 *   safely. Supplementary groups (supplementalGroups, fsGroup) are not matched by --gid-owner without
 *   --suppl-groups, which the rules do not use, so they are no escape.
 * - NET_ADMIN / NET_RAW added (by name or `ALL`, and not dropped by name again), or `privileged: true`, which grants
 *   every capability, except in the init containers of the pod's mesh (`meshInits`: istio-init, linkerd-init),
 *   which need them for the mesh's own rules. NET_RAW that a runtime grants by default without an `add` (containerd's and Docker's default
 *   set) is invisible here; `drop: [ALL]` (Pod Security "restricted") removes it.
 */
export function captureEscapes(pod: Pod, proxy: { uid: number; gid: number }, meshInits: ReadonlySet<string> = new Set()): CaptureEscape[] {
  const podSc = pod.spec.securityContext;
  const out: CaptureEscape[] = [];
  const inits = new Set(pod.spec.initContainers ?? []);
  for (const c of [...(pod.spec.initContainers ?? []), ...pod.spec.containers]) {
    if (isAigressContainer(c)) continue;
    const sc = c.securityContext;
    for (const [field, id, what] of [
      ['runAsUser', proxy.uid, 'UID'],
      ['runAsGroup', proxy.gid, 'GID'],
    ] as const) {
      const own = sc?.[field] ?? undefined;
      if ((own ?? podSc?.[field] ?? undefined) !== id) continue;
      const source = own === undefined ? `the pod's securityContext.${field}` : `securityContext.${field}`;
      out.push({
        kind: 'identity',
        container: c.name,
        field: source,
        message:
          `container "${c.name}" runs as ${what} ${id} (${source}), the aigress proxy's ${what}, so its traffic would bypass capture: ` +
          `run it as another ${what}, ${OPT_OUT}`,
      });
    }
    // A mesh's own init container writes the mesh's rules with these capabilities; its identity is still checked.
    if (inits.has(c) && meshInits.has(c.name)) continue;
    if (sc?.privileged === true) {
      out.push({
        kind: 'capability',
        container: c.name,
        field: 'securityContext.privileged',
        message:
          `container "${c.name}" is privileged (securityContext.privileged: true), which grants NET_ADMIN and NET_RAW, with which it could rewrite ` +
          `the pod's iptables rules or send raw packets and so bypass capture: run it unprivileged, ${OPT_OUT}`,
      });
      continue;
    }
    const add = (sc?.capabilities?.add ?? []).map(capName);
    const drop = new Set((sc?.capabilities?.drop ?? []).map(capName));
    const has = ESCAPING_CAPABILITIES.filter((cap) => (add.includes(cap) || add.includes('ALL')) && !drop.has(cap));
    if (has.length > 0) {
      const how = has.map((cap) => (add.includes(cap) ? cap : `${cap} (as ALL)`)).join(' and ');
      out.push({
        kind: 'capability',
        container: c.name,
        field: 'securityContext.capabilities.add',
        message:
          `container "${c.name}" adds ${how} (securityContext.capabilities.add), with which it could rewrite the pod's iptables rules ` +
          `or send raw packets and so bypass capture: drop ${has.length > 1 ? 'them' : 'it'}, ${OPT_OUT}`,
      });
    }
  }
  return out;
}
