import { describe, expect, it } from 'vitest';

// These tests exercise the schema and merge rules of fields that are not enforced yet (budgets and
// credentials); the refusal of such policies has its own tests (test/unit/shared/enforced.test.ts).
import { parse } from 'yaml';
import { parsePolicy } from '../../../shared/policy/load.js';
import { parseClusterDefault } from '../../../webhook/policy/compile.js';
import { parseConfig } from '../../../webhook/config.js';
import { controlPlaneSettings } from '../../../webhook/control-plane-flags.js';
import { restrictedViolations } from './pod-security.js';
import { find, NAMESPACE, render, validateObject, type K8sObject } from './render.js';

// `helm template` with the real helm binary, defaults and value combinations: every object valid against the
// Kubernetes OpenAPI schemas, and what matters asserted: the webhook's wiring, least-privilege RBAC, the default
// policy and config the control plane will read, and a pod the `restricted` profile admits.

type Obj = Record<string, unknown>;
interface Container {
  name: string;
  image: string;
  args: string[];
  env?: Array<{ name: string; value: string }>;
  volumeMounts: Array<{ name: string; mountPath: string; readOnly?: boolean }>;
  securityContext: Obj;
  resources?: Obj;
  startupProbe?: Obj;
  readinessProbe?: Obj;
  livenessProbe?: Obj;
}
interface PodSpec {
  serviceAccountName: string;
  securityContext: Obj;
  containers: Container[];
  volumes: Array<Obj & { name: string }>;
  affinity?: Obj;
}

const deploymentOf = (objects: K8sObject[]): K8sObject & { spec: { replicas: number; template: { metadata: { labels: Record<string, string>; annotations: Record<string, string> }; spec: PodSpec } } } =>
  find(objects, 'Deployment', 'aigress') as never;
const controlPlaneContainer = (objects: K8sObject[]): Container => deploymentOf(objects).spec.template.spec.containers[0]!;
const webhookOf = (objects: K8sObject[]): Obj => (find(objects, 'MutatingWebhookConfiguration').webhooks as Obj[])[0]!;
const configMapData = (objects: K8sObject[], name: string): Record<string, string> => find(objects, 'ConfigMap', name).data as Record<string, string>;

/** The value of `--flag=value` in the container's args. */
function flag(c: Container, name: string): string | undefined {
  const a = c.args.find((x) => x === name || x.startsWith(`${name}=`));
  return a === undefined ? undefined : a.includes('=') ? a.slice(a.indexOf('=') + 1) : '';
}

/** The file a flag names, as the container sees it: the ConfigMap key mounted at that path. */
function mountedConfigMapFile(objects: K8sObject[], c: Container, path: string): string {
  const pod = deploymentOf(objects).spec.template.spec;
  const mount = c.volumeMounts.find((m) => path.startsWith(m.mountPath + '/'));
  if (!mount) throw new Error(`${path} is on no volume mount`);
  const volume = pod.volumes.find((v) => v.name === mount.name)!;
  const cmName = (volume.configMap as { name: string } | undefined)?.name;
  if (!cmName) throw new Error(`${path} is not on a ConfigMap volume`);
  const data = configMapData(objects, cmName);
  const key = path.slice(mount.mountPath.length + 1);
  if (!(key in data)) throw new Error(`ConfigMap ${cmName} has no key ${key}`);
  return data[key]!;
}

const COMBINATIONS: Array<[string, unknown]> = [
  ['defaults', undefined],
  ['one replica, Ignore, custom image and pull secret', { replicas: 1, webhook: { failurePolicy: 'Ignore', timeoutSeconds: 5 }, image: { repository: 'registry.example.com/aigress', tag: '9.9.9', pullPolicy: 'Always' }, imagePullSecrets: [{ name: 'regcred' }] }],
  ['cert-manager with the chart issuer', { certManager: { enabled: true } }],
  ['cert-manager with a ClusterIssuer', { certManager: { enabled: true, issuerRef: { name: 'corp', kind: 'ClusterIssuer', group: 'cert-manager.io' }, injectCaBundle: false } }],
  ['pre-created CA secret', { ca: { secretName: 'corp-aigress-ca', bootstrap: false } }],
  ['shared budgets in an existing Redis', { injection: { budgets: { redisUrl: 'rediss://redis.infra:6380', passwordSecret: { name: 'aigress-redis', key: 'password' } } } }],
  ['scheduling and pod metadata', { nodeSelector: { 'kubernetes.io/os': 'linux' }, tolerations: [{ key: 'infra', operator: 'Exists', effect: 'NoSchedule' }], priorityClassName: 'system-cluster-critical', podAnnotations: { 'prometheus.io/scrape': 'true' }, podLabels: { team: 'platform' } }],
  ['injection and a restrictive default policy', {
    injection: { nativeSidecar: 'never', kubernetesVersion: '1.28', proxy: { uid: 2000, gid: 2000 }, capture: { includeOutboundPorts: [443, '8000-8100'], excludeOutboundCidrs: ['169.254.169.254/32'], ipv6: 'false' } },
    defaultPolicy: {
      providers: ['openai', 'anthropic'], regions: { allow: ['eu'], unknown: 'deny' }, models: { allow: ['gpt-4o*'], deny: ['o1*'] },
      budgets: [{ tokens: 1000000, per: '1h', scope: 'namespace' }],
      filters: [{ type: 'pii', detect: ['email', 'secret'], action: 'redact', phase: 'request' }],
      credentials: [{ provider: 'openai', secretRef: { name: 'platform-openai', key: 'apiKey' } }],
      unmatchedEgress: 'deny',
    },
  }],
];

describe.each(COMBINATIONS)('helm template: %s', (_name, values) => {
  const objects = render(values);

  it('renders only objects valid against the Kubernetes OpenAPI schemas, each named and namespaced right', () => {
    expect(objects.length).toBeGreaterThanOrEqual(9);
    for (const o of objects) {
      expect(() => validateObject(o), `${o.kind} ${o.metadata.name}`).not.toThrow();
      const clusterScoped = ['ClusterRole', 'ClusterRoleBinding', 'MutatingWebhookConfiguration'].includes(o.kind);
      expect(o.metadata.namespace, `${o.kind} ${o.metadata.name}`).toBe(clusterScoped ? undefined : NAMESPACE);
      expect(o.metadata.labels?.['app.kubernetes.io/name']).toBe('aigress');
    }
  });

  it('has a webhook the control plane can find and the API server will call as intended', () => {
    const mwc = find(objects, 'MutatingWebhookConfiguration');
    expect(mwc.metadata.name).toBe('aigress'); // fixed: webhook/webhook-cert.ts patches it by this name
    const w = webhookOf(objects);
    const v = values as { webhook?: { failurePolicy?: string; timeoutSeconds?: number } } | undefined;
    expect(w).toMatchObject({
      admissionReviewVersions: ['v1'],
      sideEffects: 'None',
      reinvocationPolicy: 'IfNeeded',
      failurePolicy: v?.webhook?.failurePolicy ?? 'Fail',
      timeoutSeconds: v?.webhook?.timeoutSeconds ?? 10,
      namespaceSelector: {
        matchLabels: { 'aigress.io/inject': 'enabled' },
        matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: [NAMESPACE, 'kube-system', 'kube-public', 'kube-node-lease'] }],
      },
      objectSelector: { matchExpressions: [{ key: 'aigress.io/inject', operator: 'NotIn', values: ['disabled'] }] },
      rules: [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'], scope: 'Namespaced' }],
    });
    const cc = w.clientConfig as Obj;
    expect(cc.caBundle).toBeUndefined(); // written by the control plane at run time
    expect(cc.url).toBeUndefined();
    const svc = find(objects, 'Service', 'aigress') as K8sObject & { spec: { selector: Record<string, string>; ports: Obj[] } };
    expect(cc.service).toEqual({ name: svc.metadata.name, namespace: NAMESPACE, path: '/mutate', port: 443 });
    expect(svc.spec.ports).toEqual([{ name: 'https', port: 443, targetPort: 'https', protocol: 'TCP' }]);
    // the Service reaches the control plane's 8443, named https
    const pod = deploymentOf(objects).spec.template;
    for (const [k, val] of Object.entries(svc.spec.selector)) expect(pod.metadata.labels[k]).toBe(val);
    expect((controlPlaneContainer(objects) as unknown as { ports: Obj[] }).ports).toEqual([{ name: 'https', containerPort: 8443, protocol: 'TCP' }]);
  });

  it('passes the cluster default policy from values.defaultPolicy with --default-policy, and the control plane accepts it', () => {
    const c = controlPlaneContainer(objects);
    const path = flag(c, '--default-policy')!;
    const text = mountedConfigMapFile(objects, c, path);
    const policy = parsePolicy(text, path);
    const spec = parseClusterDefault(text, path); // what `aigress webhook` itself runs at start
    const want = (values as { defaultPolicy?: Obj } | undefined)?.defaultPolicy;
    // the validator fills defaults (a budget's onStoreError), so the rendered values must be contained in the result
    if (want) {
      for (const [k, val] of Object.entries(want)) {
        const got = (spec as unknown as Obj)[k];
        if (typeof val === 'object' && val !== null) expect(got, k).toMatchObject(val);
        else expect(got, k).toEqual(val);
      }
    }
    else expect(spec.providers).toEqual(['openai', 'azure-openai', 'anthropic', 'gemini', 'vertex-ai', 'bedrock', 'mistral']);
    expect(policy.metadata?.name).toBe('cluster-default');
  });

  it('writes a config file the control plane accepts, pointing proxies at this release', () => {
    const c = controlPlaneContainer(objects);
    const path = flag(c, '--config')!;
    const config = parseConfig(mountedConfigMapFile(objects, c, path), path);
    expect(config.injection.controlPlane).toEqual({ address: `https://aigress.${NAMESPACE}.svc`, namespace: NAMESPACE });
    expect(config.injection.image).toBe(c.image);
    expect(config.injection.imagePullPolicy).toBe((c as unknown as { imagePullPolicy: string }).imagePullPolicy);
    expect(config.server.port).toBe(8443);
    const inj = (values as { injection?: { proxy?: { uid?: number }; nativeSidecar?: string; kubernetesVersion?: string } } | undefined)?.injection;
    expect(config.injection.proxy.uid).toBe(inj?.proxy?.uid ?? 1500);
    expect(config.injection.nativeSidecar).toBe(inj?.nativeSidecar ?? 'auto');
    const budgets = (values as { injection?: { budgets?: { redisUrl: string } } } | undefined)?.injection?.budgets;
    expect(config.injection.budgets.redisUrl).toBe(budgets?.redisUrl ?? '');
    if (budgets) expect(config.injection.budgets.passwordSecret).toEqual({ name: 'aigress-redis', key: 'password' });
    // without an override, the cluster's version from Helm (.Capabilities) decides native sidecars
    expect(config.injection.kubernetesVersion).toMatch(inj?.kubernetesVersion ? /^1\.28$/ : /^v1\.\d+\.\d+/);
  });

  it('passes flags `aigress webhook` accepts, with the CA source the values ask for', () => {
    const c = controlPlaneContainer(objects);
    expect(c.args[0]).toBe('webhook');
    const v = values as { certManager?: { enabled?: boolean }; ca?: { secretName: string; bootstrap: boolean } } | undefined;
    const settings = controlPlaneSettings(
      {
        caSource: flag(c, '--ca-source'),
        caSecret: flag(c, '--ca-secret'),
        caDir: flag(c, '--ca-dir'),
        caBootstrap: flag(c, '--no-ca-bootstrap') === undefined,
        serviceName: flag(c, '--service-name'),
        defaultPolicy: flag(c, '--default-policy'),
      },
      { KUBERNETES_SERVICE_HOST: '10.96.0.1' },
      NAMESPACE,
    )!;
    expect(settings.serviceName).toBe(find(objects, 'Service').metadata.name);
    if (v?.certManager?.enabled) {
      expect(settings.caSource).toEqual({ kind: 'files', dir: '/etc/aigress/ca' });
      const pod = deploymentOf(objects).spec.template.spec;
      const mount = c.volumeMounts.find((m) => m.mountPath === '/etc/aigress/ca')!;
      expect(mount.readOnly).toBe(true);
      const secretName = (pod.volumes.find((vol) => vol.name === mount.name)!.secret as { secretName: string }).secretName;
      const cert = find(objects, 'Certificate') as K8sObject & { spec: Obj };
      expect(cert.spec).toMatchObject({ isCA: true, secretName, privateKey: { algorithm: 'ECDSA', size: 256 } });
    } else {
      expect(settings.caSource).toEqual({ kind: 'secret', namespace: NAMESPACE, name: v?.ca?.secretName ?? 'aigress-ca', bootstrap: v?.ca?.bootstrap ?? true });
      expect(objects.filter((o) => o.apiVersion.startsWith('cert-manager.io/'))).toEqual([]);
    }
  });

  it('runs a control plane pod the `restricted` Pod Security profile admits, read-only, with probes', () => {
    const d = deploymentOf(objects);
    const pod = d.spec.template.spec;
    expect(restrictedViolations(pod as unknown as Obj)).toEqual([]);
    expect(pod.securityContext.runAsUser).toBe(65532);
    const c = controlPlaneContainer(objects);
    expect(c.securityContext.readOnlyRootFilesystem).toBe(true);
    for (const m of c.volumeMounts) if (m.mountPath !== '/tmp') expect(m.readOnly, m.mountPath).toBe(true);
    expect(c.livenessProbe).toMatchObject({ httpGet: { path: '/healthz', port: 'https', scheme: 'HTTPS' } });
    expect(c.readinessProbe).toMatchObject({ httpGet: { path: '/readyz', port: 'https', scheme: 'HTTPS' } });
    expect(c.resources).toMatchObject({ requests: { cpu: expect.any(String), memory: expect.any(String) }, limits: { memory: expect.any(String) } });
    expect(pod.serviceAccountName).toBe(find(objects, 'ServiceAccount').metadata.name);
    // its own pods opt out, so the webhook is never asked to admit the control plane
    expect(d.spec.template.metadata.labels['aigress.io/inject']).toBe('disabled');
    // a changed config or default policy rolls the control plane (it reads them at start)
    expect(d.spec.template.metadata.annotations['checksum/config']).toMatch(/^[0-9a-f]{64}$/);
    expect(d.spec.template.metadata.annotations['checksum/default-policy']).toMatch(/^[0-9a-f]{64}$/);
  });

  it('spreads replicas and guards them with a PodDisruptionBudget when there is more than one', () => {
    const d = deploymentOf(objects);
    const replicas = (values as { replicas?: number } | undefined)?.replicas ?? 2;
    expect(d.spec.replicas).toBe(replicas);
    const pdbs = objects.filter((o) => o.kind === 'PodDisruptionBudget');
    if (replicas > 1) {
      expect(pdbs).toHaveLength(1);
      expect(pdbs[0]!.spec).toEqual({ minAvailable: 1, selector: { matchLabels: (d.spec as unknown as { selector: { matchLabels: unknown } }).selector.matchLabels } });
    } else expect(pdbs).toEqual([]);
    expect(d.spec.template.spec.affinity).toEqual({
      podAntiAffinity: {
        preferredDuringSchedulingIgnoredDuringExecution: [
          { weight: 100, podAffinityTerm: { topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: { 'app.kubernetes.io/name': 'aigress', 'app.kubernetes.io/component': 'control-plane' } } } },
        ],
      },
    });
  });
});

describe('helm template: what the value combinations change', () => {
  it('cert-manager: the CA comes from a Certificate, cainjector fills the caBundle, and no Secret is read by name', () => {
    const objects = render({ certManager: { enabled: true } });
    expect(find(objects, 'MutatingWebhookConfiguration').metadata.annotations).toEqual({ 'cert-manager.io/inject-ca-from': `${NAMESPACE}/aigress-ca` });
    expect(find(objects, 'Issuer').spec).toEqual({ selfSigned: {} });
    expect((find(objects, 'Certificate').spec as Obj).issuerRef).toEqual({ name: 'aigress-selfsigned', kind: 'Issuer', group: 'cert-manager.io' });
    // only the managed credentials' list/watch in the release namespace is left (rbac.test.ts)
    expect(objects.filter((o) => o.kind === 'Role').map((o) => o.rules)).toEqual([[{ apiGroups: [''], resources: ['secrets'], verbs: ['list', 'watch'] }]]);
    const own = render({ certManager: { enabled: true, issuerRef: { name: 'corp', kind: 'ClusterIssuer', group: 'cert-manager.io' }, injectCaBundle: false } });
    expect(own.filter((o) => o.kind === 'Issuer')).toEqual([]);
    expect((find(own, 'Certificate').spec as Obj).issuerRef).toEqual({ name: 'corp', kind: 'ClusterIssuer', group: 'cert-manager.io' });
    expect(find(own, 'MutatingWebhookConfiguration').metadata.annotations).toBeUndefined();
  });

  it('a changed default policy changes the checksum that rolls the Deployment; unrelated values do not', () => {
    const sum = (values: unknown): string => (find(render(values), 'Deployment').spec as { template: { metadata: { annotations: Record<string, string> } } }).template.metadata.annotations['checksum/default-policy']!;
    const base = sum(undefined);
    expect(sum({ defaultPolicy: { providers: ['openai'] } })).not.toBe(base);
    expect(sum({ replicas: 3 })).toBe(base);
  });

  it('the default policy ConfigMap is exactly an EgressPolicy document (no stray Helm output)', () => {
    const text = configMapData(render(), 'aigress-default-policy')['default-policy.yaml']!;
    expect(parse(text)).toEqual({
      apiVersion: 'aigress.io/v1alpha1',
      kind: 'EgressPolicy',
      metadata: { name: 'cluster-default' },
      spec: {
        providers: ['openai', 'azure-openai', 'anthropic', 'gemini', 'vertex-ai', 'bedrock', 'mistral'],
        regions: { allow: [], unknown: 'allow' },
        models: { allow: [], deny: [] },
        budgets: [],
        filters: [],
        credentials: [],
        unmatchedEgress: 'passthrough',
      },
    });
  });

  it('a default policy the schema allows but the control plane refuses is caught by the control plane\'s own check', () => {
    // the schema checks shape and the closed vocabularies (providers, regions: lint.test.ts); a bad regular
    // expression is the shared validator's to find — this is what the control plane would fail its start with
    const objects = render({ defaultPolicy: { filters: [{ type: 'regex', pattern: '(unclosed' }] } });
    const text = configMapData(objects, 'aigress-default-policy')['default-policy.yaml']!;
    expect(() => parseClusterDefault(text, 'default-policy.yaml')).toThrow(/spec\.filters\[0\]\.pattern: invalid regular expression/);
  });
});

describe('the built-in defaults agree with the chart', () => {
  it('`aigress inject` without --config points proxies at the address and port the chart\'s Service serves', async () => {
    const { parse } = await import('yaml');
    const { defaultConfig } = await import('../../../webhook/config.js');
    const objects = render();
    const cm = find(objects, 'ConfigMap', 'aigress-config') as unknown as { data: Record<string, string> };
    const rendered = (parse(cm.data['config.yaml']!) as { injection: { controlPlane: { address: string } } }).injection.controlPlane.address;
    const dflt = defaultConfig().injection.controlPlane.address;
    expect(dflt).toBe(rendered);
    const svc = find(objects, 'Service', 'aigress') as unknown as { spec: { ports: Array<{ port: number }> } };
    const port = new URL(dflt).port === '' ? 443 : Number(new URL(dflt).port);
    expect(svc.spec.ports.map((p) => p.port)).toContain(port);
  });
});

describe('helm template: injection.proxy.prometheusScrape', () => {
  it('reaches the control plane\'s injection config, which injects the scrape annotations', async () => {
    const { render, find } = await import('./render.js');
    const { parse } = await import('yaml');
    const { validateConfig } = await import('../../../webhook/config.js');
    const { inject } = await import('../../../webhook/inject/inject.js');
    const objects = render({ injection: { proxy: { prometheusScrape: true } } });
    const cm = find(objects, 'ConfigMap', 'aigress-config') as unknown as { data: Record<string, string> };
    const text = Object.values(cm.data)[0]!;
    const cfg = validateConfig(parse(text));
    expect(cfg.ok).toBe(true);
    if (!cfg.ok) return;
    const r = inject({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec: { containers: [{ name: 'app', image: 'a' }] } }, { namespace: 'team-a' }, cfg.config.injection);
    expect(r.pod?.metadata?.annotations?.['prometheus.io/port']).toBe('14020');
  });
});

describe('helm template: injection.capture.escapingContainers', () => {
  const netAdminPod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec: { containers: [{ name: 'vpn', image: 'a', securityContext: { capabilities: { add: ['NET_ADMIN'] } } }] } };
  it.each([
    [undefined, 'capability-conflict'],
    ['warn', 'injected'],
  ] as const)('%s reaches the control plane\'s injection config (%s)', async (mode, reason) => {
    const { render, find } = await import('./render.js');
    const { parse } = await import('yaml');
    const { validateConfig } = await import('../../../webhook/config.js');
    const { inject } = await import('../../../webhook/inject/inject.js');
    const objects = render(mode === undefined ? undefined : { injection: { capture: { escapingContainers: mode } } });
    const cm = find(objects, 'ConfigMap', 'aigress-config') as unknown as { data: Record<string, string> };
    const cfg = validateConfig(parse(Object.values(cm.data)[0]!));
    expect(cfg.ok).toBe(true);
    if (!cfg.ok) return;
    expect(cfg.config.injection.capture.escapingContainers).toBe(mode ?? 'deny');
    const r = inject(netAdminPod, { namespace: 'team-a' }, cfg.config.injection);
    expect(r.reason).toBe(reason);
  });
});
