import type { InjectionConfig } from '../config.js';
import type { Pod } from './types.js';

// Which service meshes a pod is in, from what their injectors leave on it. A mesh proxy forwards what the app
// (and aigress) sent, as its own UID: capturing that again would send it back to aigress in a loop, so the
// mesh's UID is exempted from capture (docs/meshes.md). Pure.

export interface Mesh {
  name: 'istio' | 'linkerd';
  uid: number;
  /** What on the pod said so, for the injection warning. */
  evidence: string;
}

const allContainers = (pod: Pod): string[] => [...(pod.spec.initContainers ?? []), ...pod.spec.containers].map((c) => c.name);

/**
 * Istio: its sidecar (`istio-proxy`, a container or a native-sidecar init container) or its injector's marks
 * (`sidecar.istio.io/status`, or `sidecar.istio.io/inject: "true"` asking for it). Linkerd: `linkerd-proxy`,
 * `linkerd.io/proxy-version`, or `linkerd.io/inject: enabled`. The asking marks matter because the API server
 * calls mutating webhooks in name order: aigress's may run before the mesh's has added anything.
 */
export function meshesOf(pod: Pod, config: InjectionConfig): Mesh[] {
  const names = allContainers(pod);
  const a = pod.metadata?.annotations ?? {};
  const l = pod.metadata?.labels ?? {};
  const out: Mesh[] = [];
  const istio = names.includes('istio-proxy')
    ? 'container istio-proxy'
    : a['sidecar.istio.io/status'] !== undefined
      ? 'annotation sidecar.istio.io/status'
      : a['sidecar.istio.io/inject'] === 'true' || l['sidecar.istio.io/inject'] === 'true'
        ? 'sidecar.istio.io/inject: "true"'
        : undefined;
  if (istio) out.push({ name: 'istio', uid: config.capture.meshProxyUids.istio, evidence: istio });
  const linkerd = names.includes('linkerd-proxy')
    ? 'container linkerd-proxy'
    : a['linkerd.io/proxy-version'] !== undefined
      ? 'annotation linkerd.io/proxy-version'
      : a['linkerd.io/inject'] === 'enabled'
        ? 'linkerd.io/inject: enabled'
        : undefined;
  if (linkerd) out.push({ name: 'linkerd', uid: config.capture.meshProxyUids.linkerd, evidence: linkerd });
  return out;
}

/**
 * The init containers each mesh's injector adds to write its own iptables rules: they need NET_ADMIN and NET_RAW
 * (istio-init, linkerd-init), so in a pod of that mesh they are not taken for an app escaping capture. Trusted by
 * name, like the mesh itself (docs/security.md says what that leaves open).
 */
export const MESH_INIT_CONTAINERS: Readonly<Record<Mesh['name'], readonly string[]>> = { istio: ['istio-init'], linkerd: ['linkerd-init'] };
