import { ANNOTATION_STATUS, INIT_CONTAINER_NAME, PROXY_CONTAINER_NAME, VERSION } from '../../shared/constants.js';
import { useNativeSidecar, type InjectionConfig } from '../config.js';
import { readOverrides } from './annotations.js';
import { planEnv } from './env.js';
import { MESH_INIT_CONTAINERS, meshesOf, type Mesh } from './mesh.js';
import { PatchBuilder, type Segment } from './patch.js';
import { captureEscapes, isAigressContainer, isInjected, skipReason, type SkipCode } from './rules.js';
import { checkPodShape, formatShapeIssues } from './shape.js';
import { CA_VOLUME, appCaMount, auditVolume, caVolume, extraCaVolume, initContainer, initRunVolume, proxyContainer, tokenVolume, type PodFacts } from './template.js';
import { workloadOf } from './workload.js';
import type { Container, PatchOperation, Pod } from './types.js';
import type { ProviderId } from '../../shared/policy/types.js';

// inject(pod, context, config) → patch: the one decision both the webhook and `aigress inject` make. Pure: no I/O,
// no clock, no randomness, so the same pod always gives the same patch (golden tests rely on it).

export interface InjectionContext {
  /** The pod's namespace (the AdmissionRequest's, since a pod from a template may not carry one). */
  namespace: string;
  /** The owning workload when the caller knows it (`aigress inject` on a Deployment); else from owner references. */
  workload?: string;
  /** Providers the namespace's effective policy has a managed credential for (SDK key placeholders; env.ts). */
  managedCredentials?: readonly ProviderId[];
}

/** A bounded set, used as a metrics label: what happened and why. */
export type InjectionReason =
  | 'injected'
  | 'updated'
  | 'already-injected'
  | SkipCode
  | 'invalid-object'
  | 'invalid-annotation'
  | 'identity-conflict'
  | 'capability-conflict';

export interface InjectionResult {
  /** Empty when skipped or denied. */
  patch: PatchOperation[];
  /** For the admission response's `warnings` (kubectl prints them) and the CLI's stderr. */
  warnings: string[];
  /** Set when no patch is due: why the pod was left as it is. */
  skippedReason?: string;
  /** Set when the pod must not be admitted; `code` is the HTTP-like status for the admission response. */
  denied?: { code: number; message: string };
  reason: InjectionReason;
  /** The pod after the patch (the input itself when nothing changed); absent when the object is not a pod. */
  pod?: Pod;
}

/** The `aigress.io/status` annotation: which version injected what, so a second pass knows to change nothing. */
export interface InjectionStatus {
  version: string;
  initContainers: string[];
  containers: string[];
  volumes: string[];
  /** Pod annotations injection added (the scrape annotations); absent when none, so uninject removes only these. */
  annotations?: string[];
}

/** The Prometheus annotation-discovery convention for the proxy's admin port. */
export function scrapeAnnotations(config: InjectionConfig): Record<string, string> {
  return { 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(config.proxy.adminPort), 'prometheus.io/path': '/metrics' };
}

export function inject(input: unknown, context: InjectionContext, config: InjectionConfig): InjectionResult {
  const shape = checkPodShape(input);
  if (!shape.ok) {
    return { patch: [], warnings: [], reason: 'invalid-object', denied: { code: 400, message: `invalid pod: ${formatShapeIssues(shape.issues)}` } };
  }
  const pod = shape.pod;
  const skip = skipReason(pod, context.namespace, config);
  if (skip) return { patch: [], warnings: [], skippedReason: skip.message, reason: skip.code, pod };

  // Before the already-injected check: a container another webhook added on reinvocation is checked too.
  const meshes = meshesOf(pod, config);
  const escapes = captureEscapes(pod, config.proxy, new Set(meshes.flatMap((m) => MESH_INIT_CONTAINERS[m.name])));
  if (escapes.length > 0 && config.capture.escapingContainers === 'deny') {
    const message = escapes.map((e) => e.message).join('; ');
    return { patch: [], warnings: [], reason: escapes[0]!.kind === 'identity' ? 'identity-conflict' : 'capability-conflict', denied: { code: 403, message } };
  }

  if (isInjected(pod)) return reinject(pod, config, meshes, context.managedCredentials);

  const read = readOverrides(pod.metadata?.annotations);
  if (!read.ok) return { patch: [], warnings: [], reason: 'invalid-annotation', denied: { code: 400, message: read.message } };
  const facts: PodFacts = { meshes };
  const workload = context.workload ?? workloadOf(pod);
  if (workload !== undefined) facts.workload = workload;

  const native = useNativeSidecar(config);
  const b = new PatchBuilder(pod);
  const extraCa = extraCaVolume(config);
  const audit = auditVolume(config);
  // A volume the pod already declares (an `aigress-audit` its log shipper mounts too) is the pod's: used, never
  // added, and not in the status, so uninject leaves it.
  const existing = new Set((pod.spec.volumes ?? []).map((v) => v.name));
  const volumes = [caVolume(), tokenVolume(), initRunVolume(), ...(extraCa ? [extraCa] : []), ...(audit ? [audit] : [])].filter((v) => !existing.has(v.name));
  const status: InjectionStatus = {
    version: VERSION,
    initContainers: native ? [INIT_CONTAINER_NAME, PROXY_CONTAINER_NAME] : [INIT_CONTAINER_NAME],
    containers: native ? [] : [PROXY_CONTAINER_NAME],
    volumes: volumes.map((v) => v.name),
  };
  if (config.proxy.prometheusScrape) {
    // Never over an annotation the pod sets itself (its app may be scraped on its own port).
    const own = pod.metadata?.annotations ?? {};
    const added = Object.entries(scrapeAnnotations(config)).filter(([k]) => own[k] === undefined);
    for (const [k, v] of added) b.set(['metadata', 'annotations', k], v);
    if (added.length > 0) status.annotations = added.map(([k]) => k);
  }
  b.set(['metadata', 'annotations', ANNOTATION_STATUS], JSON.stringify(status));
  b.append(['spec', 'volumes'], volumes);
  // Init first so capture is in place before anything else runs; the native proxy right after it, so the pod's
  // own init containers already go through it.
  b.insert(['spec', 'initContainers'], 0, initContainer(config, read.overrides, facts));
  if (native) b.insert(['spec', 'initContainers'], 1, proxyContainer(config, read.overrides, true, facts));
  else b.insert(['spec', 'containers'], 0, proxyContainer(config, read.overrides, false, facts));

  // escapingContainers: warn — the pod is injected, and kubectl shows why its capture cannot be relied on.
  const escapeWarnings = escapes.map((e) => `${e.message} (injection.capture.escapingContainers: warn admitted it)`);
  const warnings = [...escapeWarnings, ...read.warnings, ...meshWarnings(meshes), ...(native ? [] : nonNativeWarnings(pod, config)), ...wireContainers(b, native, context.managedCredentials)];
  return { patch: b.ops, warnings, reason: 'injected', pod: b.doc as Pod };
}

function meshWarnings(meshes: readonly Mesh[]): string[] {
  return meshes.map(
    (m) => `pod is in the ${m.name} mesh (${m.evidence}): its proxy's UID ${m.uid} is exempted from capture, aigress sees the app's traffic first (docs/meshes.md)`,
  );
}

/** What a regular-container proxy (`nativeSidecar: never`) cannot do, said where it matters for this pod. */
function nonNativeWarnings(pod: Pod, config: InjectionConfig): string[] {
  const warnings: string[] = [];
  const inits = (pod.spec.initContainers ?? []).map((c) => c.name);
  if (inits.length > 0) {
    warnings.push(
      `proxy is not a native sidecar: init containers ${inits.join(', ')} run before it, so their connections on captured ports fail; ` +
        'exclude those destinations with aigress.io/exclude-outbound-ports or -cidrs',
    );
  }
  const restart = pod.spec.restartPolicy;
  if (restart === 'Never' || restart === 'OnFailure') {
    warnings.push(
      `proxy is not a native sidecar: with restartPolicy ${restart} the pod completes only after the app calls ` +
        `POST http://127.0.0.1:${config.proxy.adminPort}/shutdown (see docs/injection.md)`,
    );
  }
  return warnings;
}

/**
 * A pod aigress already injected, seen again: on reinvocation (`reinvocationPolicy: IfNeeded`) after another
 * webhook added containers, or `aigress inject` run on its own output. Only containers without the CA mount get
 * the env vars and the mount; everything else stays as the first pass left it.
 */
function reinject(pod: Pod, config: InjectionConfig, meshes: readonly Mesh[], managed?: readonly ProviderId[]): InjectionResult {
  const native = (pod.spec.initContainers ?? []).some((c) => c.name === PROXY_CONTAINER_NAME);
  const b = new PatchBuilder(pod);
  const warnings = [...exemptNewMeshes(b, config, meshes), ...wireContainers(b, native, managed)];
  if (b.ops.length === 0) return { patch: [], warnings: [], skippedReason: 'already injected', reason: 'already-injected', pod };
  return { patch: b.ops, warnings, reason: 'updated', pod: b.doc as Pod };
}

/**
 * A mesh injector that ran after aigress (webhooks run in name order; `reinvocationPolicy: IfNeeded` calls aigress
 * again) added its proxy: the init container's `--exclude-uids` gains the mesh's UID, or that proxy's forwarding
 * would be captured again and loop. Only that flag changes; nothing else of the first pass is touched.
 */
function exemptNewMeshes(b: PatchBuilder, config: InjectionConfig, meshes: readonly Mesh[]): string[] {
  const inits = (b.get(['spec', 'initContainers']) as Container[] | undefined) ?? [];
  const i = inits.findIndex((c) => c.name === INIT_CONTAINER_NAME);
  const args = inits[i]?.args;
  if (i < 0 || !Array.isArray(args) || !args.every((a) => typeof a === 'string')) return [];
  const flag = args.indexOf('--exclude-uids');
  const have = flag >= 0 ? String(args[flag + 1] ?? '').split(',').map(Number) : [];
  const missing = meshes.filter((m) => !have.includes(m.uid));
  if (missing.length === 0) return [];
  const uids = [...new Set([...have, ...missing.map((m) => m.uid)])].sort((x, y) => x - y).join(',');
  const next = [...(args as string[])];
  if (flag >= 0) next[flag + 1] = uids;
  // the flag goes where initArgs puts it, before --ipv6
  else next.splice(next.indexOf('--ipv6') >= 0 ? next.indexOf('--ipv6') : next.length, 0, '--exclude-uids', uids);
  b.replace(['spec', 'initContainers', i, 'args'], next);
  return meshWarnings(missing);
}

/**
 * Gives every app container and every init container after aigress's own the CA env vars and the read-only CA
 * mount. With a non-native proxy the pod's own init containers run before the proxy has written the bundle, so
 * pointing them at it would break their TLS; they are left as they are (see docs/injection.md).
 */
function wireContainers(b: PatchBuilder, native: boolean, managed: readonly ProviderId[] = []): string[] {
  const warnings: string[] = [];
  const lists: Array<'initContainers' | 'containers'> = native ? ['initContainers', 'containers'] : ['containers'];
  for (const list of lists) {
    const containers = (b.get(['spec', list]) as Container[] | undefined) ?? [];
    containers.forEach((c, i) => {
      if (isAigressContainer(c) || (c.volumeMounts ?? []).some((m) => m.name === CA_VOLUME)) return;
      const at: Segment[] = ['spec', list, i];
      const plan = planEnv(c, managed);
      warnings.push(...plan.warnings);
      if (plan.javaUpdate) {
        const valuePath = [...at, 'env', plan.javaUpdate.index, 'value'];
        if (b.get(valuePath) === undefined) b.set(valuePath, plan.javaUpdate.value);
        else b.replace(valuePath, plan.javaUpdate.value);
      }
      b.append([...at, 'env'], plan.add);
      b.append([...at, 'volumeMounts'], [appCaMount()]);
    });
  }
  return warnings;
}
