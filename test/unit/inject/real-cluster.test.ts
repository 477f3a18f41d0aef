import fastJsonPatch from 'fast-json-patch';
import { describe, expect, it } from 'vitest';
import { defaultConfig, validateConfig, withRuntimeDefaults, type InjectionConfig } from '../../../webhook/config.js';
import { inject } from '../../../webhook/inject/inject.js';
import { injectManifests } from '../../../webhook/inject/manifests.js';
import type { Container, Pod } from '../../../webhook/inject/types.js';
import { workloadOf } from '../../../webhook/inject/workload.js';

// What a real cluster's pods need from injection: the Kubernetes API left alone, a mesh's proxy exempted (also
// when the mesh's webhook runs after aigress's), and the owning workload named for the proxy.

const { applyPatch, deepClone } = fastJsonPatch;
const base = defaultConfig().injection;
const ctx = { namespace: 'team-a' };

const pod = (extra: Partial<Pod> = {}, containers: Container[] = [{ name: 'app', image: 'app:1' }]): Pod => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'p' },
  spec: { containers },
  ...extra,
});

const initOf = (p: Pod | undefined): string[] => (p?.spec.initContainers?.find((c) => c.name === 'aigress-init')?.args as string[]) ?? [];
const flag = (args: string[], name: string): string | undefined => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const proxyEnv = (p: Pod | undefined, name: string): string | undefined =>
  p?.spec.initContainers?.find((c) => c.name === 'aigress-proxy')?.env?.find((e) => e.name === name)?.value;

describe('the Kubernetes API is excluded from capture', () => {
  const inCluster = withRuntimeDefaults(base, { KUBERNETES_SERVICE_HOST: '10.96.0.1' });

  it('takes the address from the webhook\'s own KUBERNETES_SERVICE_HOST and leaves it out of capture', () => {
    expect(inCluster.capture.kubernetesApiAddress).toBe('10.96.0.1');
    expect(flag(initOf(inject(pod(), ctx, inCluster).pod), '--exclude-outbound-cidrs')).toBe('10.96.0.1/32');
  });

  it('keeps the pod\'s own exclusions after it, and an IPv6 API address is a /128', () => {
    const v6 = withRuntimeDefaults(base, { KUBERNETES_SERVICE_HOST: 'fd00:10:96::1' });
    const p = pod({ metadata: { name: 'p', annotations: { 'aigress.io/exclude-outbound-cidrs': '10.0.0.0/8' } } });
    expect(flag(initOf(inject(p, ctx, v6).pod), '--exclude-outbound-cidrs')).toBe('fd00:10:96::1/128,10.0.0.0/8');
  });

  it('can be turned off, and a configured address wins over the environment', () => {
    const off = validateConfig({ injection: { capture: { excludeKubernetesApi: false } } });
    expect(off.ok).toBe(true);
    const offCfg = withRuntimeDefaults((off as { ok: true; config: { injection: InjectionConfig } }).config.injection, { KUBERNETES_SERVICE_HOST: '10.96.0.1' });
    expect(flag(initOf(inject(pod(), ctx, offCfg).pod), '--exclude-outbound-cidrs')).toBeUndefined();
    const set = validateConfig({ injection: { capture: { kubernetesApiAddress: '172.20.0.1' } } });
    const setCfg = withRuntimeDefaults((set as { ok: true; config: { injection: InjectionConfig } }).config.injection, { KUBERNETES_SERVICE_HOST: '10.96.0.1' });
    expect(flag(initOf(inject(pod(), ctx, setCfg).pod), '--exclude-outbound-cidrs')).toBe('172.20.0.1/32');
  });

  it('refuses a config address that is not an IP, naming the field', () => {
    const r = validateConfig({ injection: { capture: { kubernetesApiAddress: 'kubernetes.default' } } });
    expect(r.ok === false && r.issues[0]!.path).toBe('injection.capture.kubernetesApiAddress');
  });

  it('outside a cluster (no KUBERNETES_SERVICE_HOST, or a name) nothing is added', () => {
    expect(withRuntimeDefaults(base, {}).capture.kubernetesApiAddress).toBe('');
    expect(withRuntimeDefaults(base, { KUBERNETES_SERVICE_HOST: 'api.example' }).capture.kubernetesApiAddress).toBe('');
  });
});

describe('service meshes', () => {
  it('exempts Istio\'s UID when the pod carries istio-proxy, and warns', () => {
    const r = inject(pod({}, [{ name: 'app' }, { name: 'istio-proxy' }]), ctx, base);
    expect(flag(initOf(r.pod), '--exclude-uids')).toBe('1337');
    expect(r.warnings.join('\n')).toContain('istio mesh');
  });

  it('exempts Linkerd\'s UID from its inject annotation, before its proxy is there (its webhook runs after ours)', () => {
    const p = pod({ metadata: { name: 'p', annotations: { 'linkerd.io/inject': 'enabled' } } });
    expect(flag(initOf(inject(p, ctx, base).pod), '--exclude-uids')).toBe('2102');
  });

  it('adds nothing for a pod without a mesh', () => {
    expect(initOf(inject(pod(), ctx, base).pod)).not.toContain('--exclude-uids');
  });

  it('on reinvocation after the mesh injector added its proxy, adds the UID to the init container only', () => {
    const first = inject(pod(), ctx, base).pod!;
    const meshed: Pod = deepClone(first);
    meshed.spec.initContainers!.push({ name: 'istio-proxy', image: 'istio/proxyv2', restartPolicy: 'Always' });
    const again = inject(meshed, ctx, base);
    expect(again.reason).toBe('updated');
    // the init container's args, plus the usual wiring of the newly added container (index 2), nothing else
    const paths = again.patch.map((o) => o.path);
    expect(paths[0]).toBe('/spec/initContainers/0/args');
    for (const p of paths.slice(1)) expect(p.startsWith('/spec/initContainers/2/')).toBe(true);
    const applied = applyPatch(deepClone(meshed), again.patch as never, true, false).newDocument;
    const args = initOf(applied);
    expect(flag(args, '--exclude-uids')).toBe('1337');
    expect(args.indexOf('--exclude-uids')).toBeLessThan(args.indexOf('--ipv6'));
    // and a third pass changes nothing
    expect(inject(applied, ctx, base).patch).toEqual([]);
  });

  it('takes the mesh UIDs from the config', () => {
    const r = validateConfig({ injection: { capture: { meshProxyUids: { istio: 1338 } } } });
    const cfg = (r as { ok: true; config: { injection: InjectionConfig } }).config.injection;
    expect(flag(initOf(inject(pod({}, [{ name: 'app' }, { name: 'istio-proxy' }]), ctx, cfg).pod), '--exclude-uids')).toBe('1338');
  });
});

describe('owning workload', () => {
  const owned = (kind: string, name: string, labels?: Record<string, string>): Pod =>
    pod({ metadata: { name: 'p', ...(labels ? { labels } : {}), ownerReferences: [{ apiVersion: 'v1', kind, name, uid: 'x', controller: true }] } });

  it.each([
    [owned('ReplicaSet', 'checkout-5d8f7c9b4', { 'pod-template-hash': '5d8f7c9b4' }), 'deployment/checkout'],
    [owned('ReplicaSet', 'standalone-rs'), 'replicaset/standalone-rs'],
    [owned('StatefulSet', 'vector-db'), 'statefulset/vector-db'],
    [owned('DaemonSet', 'node-agent'), 'daemonset/node-agent'],
    [owned('Job', 'nightly-report-29413560'), 'cronjob/nightly-report'],
    [owned('Job', 'embeddings'), 'job/embeddings'],
    [pod(), undefined],
  ])('%#: %s', (p, expected) => {
    expect(workloadOf(p)).toBe(expected);
    expect(proxyEnv(inject(p, ctx, base).pod, 'AIGRESS_WORKLOAD')).toBe(expected);
  });
});

describe('aigress inject names what it does not inject', () => {
  it.each([
    ['v1', 'ReplicationController', 'ReplicationController is not rewritten'],
    ['argoproj.io/v1alpha1', 'Workflow', 'Argo Workflow embeds pod templates'],
    ['serving.knative.dev/v1', 'Service', 'Knative Service embeds pod templates'],
  ])('%s %s', (apiVersion, kind, text) => {
    const r = injectManifests(`apiVersion: ${apiVersion}\nkind: ${kind}\nmetadata: {name: x}\nspec: {}\n`, { config: base });
    expect(r.notes.join('\n')).toContain(text);
    expect(r.output).toContain(`kind: ${kind}`);
  });
});

describe('extra trust roots (injection.proxy.extraCaConfigMap)', () => {
  it('mounts the ConfigMap into the proxy only and passes --extra-ca-file', () => {
    const r = validateConfig({ injection: { proxy: { extraCaConfigMap: { name: 'corp-roots', key: 'roots.pem' } } } });
    const cfg = (r as { ok: true; config: { injection: InjectionConfig } }).config.injection;
    const p = inject(pod(), ctx, cfg).pod!;
    expect(p.spec.volumes).toContainEqual({ name: 'aigress-extra-ca', configMap: { name: 'corp-roots', items: [{ key: 'roots.pem', path: 'ca.crt' }] } });
    const proxy = p.spec.initContainers!.find((c) => c.name === 'aigress-proxy')!;
    expect(flag(proxy.args as string[], '--extra-ca-file')).toBe('/etc/aigress/extra-ca/ca.crt');
    expect(proxy.volumeMounts).toContainEqual({ name: 'aigress-extra-ca', mountPath: '/etc/aigress/extra-ca', readOnly: true });
    expect(p.spec.containers[0]!.volumeMounts!.some((m) => m.name === 'aigress-extra-ca')).toBe(false);
  });

  it('adds nothing by default, and refuses a bad ConfigMap name naming the field', () => {
    expect(inject(pod(), ctx, base).pod!.spec.volumes!.some((v) => v.name === 'aigress-extra-ca')).toBe(false);
    const r = validateConfig({ injection: { proxy: { extraCaConfigMap: { name: 'Corp_Roots' } } } });
    expect(r.ok === false && r.issues[0]!.path).toBe('injection.proxy.extraCaConfigMap.name');
  });
});
