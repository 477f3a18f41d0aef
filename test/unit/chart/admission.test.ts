import jsonpatch, { type Operation } from 'fast-json-patch';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpsCall } from '../../../cli/demo/https-client.js';
import { createCA } from '../../../shared/pki.js';
import { ensureBuilt } from '../inject/built-cli.js';
import { apiServerChecks, validateSchema } from '../inject/support.js';
import { admit, caBundlePem, startFromChart, type ChartCluster } from './cluster.js';
import { authorize, requestAttributes, ruleAllows, type PolicyRule } from './rbac.js';
import { find, NAMESPACE, render, type K8sObject } from './render.js';

// ARCHITECTURE.md test layer 2, from the chart: the control plane runs as the rendered Deployment runs it (its
// args, its ConfigMaps mounted, the built `aigress` binary) against a fake API server holding the rendered
// MutatingWebhookConfiguration. It writes the caBundle itself; the harness then plays kube-apiserver: rendered
// rules and selectors decide whether to call, TLS is verified against that caBundle for the Service's name, the
// JSONPatch is applied with an RFC 6902 library, and the pod is validated against the Kubernetes schemas. Every
// request the control plane sent the API server is checked against the chart's RBAC.

type Obj = Record<string, unknown>;
interface Container {
  name: string;
  image: string;
  args?: string[];
  env?: Array<{ name: string; value?: string }>;
}
type Pod = Obj & { metadata: { name: string; namespace?: string; labels?: Record<string, string> }; spec: { serviceAccountName?: string; initContainers?: Container[]; containers: Container[] } };

const appPod = (labels: Record<string, string> = { app: 'app' }): Pod => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'app', labels },
  spec: { serviceAccountName: 'app', containers: [{ name: 'app', image: 'registry.example.com/app:1' }] },
});
const ENABLED = { 'aigress.io/inject': 'enabled' };

function applied(pod: Pod, ops: Operation[]): Pod {
  // validate each operation against the document, as an RFC 6902 implementation must
  return jsonpatch.applyPatch(structuredClone(pod), ops, true, false).newDocument;
}

function expectValidPod(pod: Pod): void {
  expect(() => validateSchema(pod)).not.toThrow();
  expect(apiServerChecks(pod)).toEqual([]);
}

function everyRequestAuthorized(c: ChartCluster): { denied: string[]; usedRules: Set<PolicyRule> } {
  const sa = { namespace: NAMESPACE, name: (find(c.objects, 'Deployment').spec as { template: { spec: { serviceAccountName: string } } }).template.spec.serviceAccountName };
  const rules = c.objects.filter((o) => o.kind === 'ClusterRole' || o.kind === 'Role').flatMap((o) => o.rules as PolicyRule[]);
  const denied: string[] = [];
  const usedRules = new Set<PolicyRule>();
  for (const r of c.api.requests) {
    const attrs = requestAttributes(r.method, r.path, r.query);
    if (!authorize(c.objects, sa, attrs)) denied.push(`${r.method} ${r.path}${r.query}`);
    for (const rule of rules) if (ruleAllows(rule, attrs)) usedRules.add(rule);
  }
  return { denied, usedRules };
}

describe('admission harness: the chart\'s control plane, called as kube-apiserver calls it', () => {
  let c: ChartCluster;
  let objects: K8sObject[];
  beforeAll(async () => {
    ensureBuilt();
    objects = render();
    c = await startFromChart(objects, {
      setup: (api) => {
        api.put('v1', 'namespaces', { metadata: { name: 'team-a', labels: ENABLED } });
        api.put('aigress.io/v1alpha1', 'egresspolicies', {
          apiVersion: 'aigress.io/v1alpha1',
          kind: 'EgressPolicy',
          metadata: { name: 'eu-only', namespace: 'team-a' },
          spec: { regions: { allow: ['eu'], unknown: 'deny' } },
        });
        // the cluster default as a resource: the same as the chart's value, so the rest of this suite is unchanged
        api.put('aigress.io/v1alpha1', 'clusteregresspolicies', {
          apiVersion: 'aigress.io/v1alpha1',
          kind: 'ClusterEgressPolicy',
          metadata: { name: 'default' },
          spec: { providers: ['openai', 'azure-openai', 'anthropic', 'gemini', 'vertex-ai', 'bedrock', 'mistral'], unmatchedEgress: 'passthrough' },
        });
        api.addToken('proxy-token', { namespace: 'team-a', serviceAccount: 'app', audiences: ['aigress'], podName: 'app' });
      },
    });
  }, 120_000);
  afterAll(async () => {
    if (c) expect(await c.stop()).toBe(0);
  });

  it('the control plane bootstrapped its CA and patched only the caBundle of the rendered configuration', () => {
    expect(c.output()).toContain('CA bootstrapped');
    expect(c.output()).not.toContain('PRIVATE KEY');
    const now = c.mwc();
    const rendered = find(objects, 'MutatingWebhookConfiguration');
    const pem = caBundlePem(now)!;
    const secret = c.api.get('v1', 'secrets', NAMESPACE, 'aigress-ca')!;
    expect(pem).toBe(Buffer.from((secret.data as Record<string, string>)['tls.crt']!, 'base64').toString());
    const withoutBundle = structuredClone(now.webhooks);
    for (const w of withoutBundle) delete w.clientConfig.caBundle;
    expect(withoutBundle).toEqual(rendered.webhooks);
  });

  it('injects a pod in an opted-in namespace: TLS verified by the caBundle, patch applies, pod is valid', async () => {
    const pod = appPod();
    const r = await admit(c, pod, { name: 'team-a', labels: ENABLED });
    expect(r).toMatchObject({ called: true, allowed: true });
    expect(r.patch.length).toBeGreaterThan(0);
    const injected = applied(pod, r.patch as Operation[]);
    expectValidPod(injected);
    const all = [...(injected.spec.initContainers ?? []), ...injected.spec.containers];
    const proxy = all.find((x) => x.name === 'aigress-proxy')!;
    const init = all.find((x) => x.name === 'aigress-init')!;
    // what the chart configured: its image, its Service as the control plane, its CA for the proxy
    const image = (find(objects, 'Deployment').spec as { template: { spec: { containers: Container[] } } }).template.spec.containers[0]!.image;
    expect(proxy.image).toBe(image);
    expect(init.image).toBe(image);
    expect(proxy.args).toEqual(expect.arrayContaining(['--control-plane', `https://aigress.${NAMESPACE}.svc`]));
    expect(proxy.env?.find((e) => e.name === 'AIGRESS_CONTROL_PLANE_CA')?.value).toBe(caBundlePem(c.mwc()));
    // reinvocation (reinvocationPolicy: IfNeeded) of an injected pod changes nothing
    const again = await admit(c, injected, { name: 'team-a', labels: ENABLED });
    expect(again).toMatchObject({ called: true, allowed: true });
    expect(applied(injected, again.patch as Operation[])).toEqual(injected);
  });

  it('the proxy can reach its policy at the address the chart configured (TokenReview through the chart\'s RBAC)', async () => {
    const res = await c.get('/v1/policy', { authorization: 'Bearer proxy-token' });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toMatchObject({ metadata: { namespace: 'team-a' }, spec: { regions: { allow: ['eu'], unknown: 'deny' } } });
  });

  it('is not trusted by a client holding another CA, nor under another Service name', async () => {
    const other = await createCA('not the aigress CA', 1);
    await expect(admit(c, appPod(), { name: 'team-a', labels: ENABLED }, 'CREATE', other.certPem)).rejects.toThrow(/self[- ]signed|unable to verify|certificate/i);
    await expect(
      httpsCall({ port: c.port, servername: 'aigress.elsewhere.svc', ca: caBundlePem(c.mwc())!, method: 'GET', path: '/healthz' }),
    ).rejects.toThrow(/altnames|does not match|Hostname/i);
  });

  it.each([
    ['a namespace that has not opted in', appPod(), { name: 'team-b' }, 'CREATE'],
    ['a namespace with another label value', appPod(), { name: 'team-c', labels: { 'aigress.io/inject': 'disabled' } }, 'CREATE'],
    ['a pod labelled aigress.io/inject=disabled', appPod({ app: 'x', 'aigress.io/inject': 'disabled' }), { name: 'team-a', labels: ENABLED }, 'CREATE'],
    ['kube-system, even when labelled', appPod(), { name: 'kube-system', labels: ENABLED }, 'CREATE'],
    ['an UPDATE', appPod(), { name: 'team-a', labels: ENABLED }, 'UPDATE'],
  ] as const)('is not called for %s', async (_what, pod, ns, op) => {
    expect(await admit(c, structuredClone(pod) as Pod, ns, op)).toEqual({ called: false, patch: [] });
  });

  it('never admits the control plane itself, even when its namespace is labelled aigress.io/inject=enabled', async () => {
    const tpl = (find(objects, 'Deployment').spec as { template: { metadata: { labels: Record<string, string> }; spec: Obj } }).template;
    const self = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'aigress-0', labels: tpl.metadata.labels }, spec: tpl.spec } as unknown as Pod;
    const ns = { name: NAMESPACE, labels: ENABLED };
    expect(await admit(c, self, ns)).toEqual({ called: false, patch: [] });
    // each selector alone is enough: without the pod's opt-out label, the namespaceSelector still excludes it
    const unlabelled = structuredClone(self);
    delete unlabelled.metadata.labels!['aigress.io/inject'];
    expect(await admit(c, unlabelled, ns)).toEqual({ called: false, patch: [] });
  });

  it('every request the control plane sent the API server is allowed by the chart\'s RBAC, and every rule was needed', async () => {
    // the policy controller writes the EgressPolicy's Accepted condition (egresspolicies/status update)
    const status = (): unknown => c.api.get('aigress.io/v1alpha1', 'egresspolicies', 'team-a', 'eu-only')?.status;
    for (let i = 0; i < 100 && !status(); i++) await new Promise((r) => setTimeout(r, 50));
    expect(status()).toMatchObject({ conditions: [{ type: 'Accepted', status: 'True' }] });
    // and the ClusterEgressPolicy's (clusteregresspolicies/status update)
    const cstatus = (): unknown => c.api.get('aigress.io/v1alpha1', 'clusteregresspolicies', undefined, 'default')?.status;
    for (let i = 0; i < 100 && !cstatus(); i++) await new Promise((r) => setTimeout(r, 50));
    expect(cstatus()).toMatchObject({ conditions: [{ type: 'Accepted', status: 'True' }] });
    const { denied, usedRules } = everyRequestAuthorized(c);
    expect(c.api.requests.length).toBeGreaterThan(5);
    expect(denied).toEqual([]);
    // least privilege the other way round: no rule the control plane did not use
    const rules = objects.filter((o) => o.kind === 'ClusterRole' || o.kind === 'Role').flatMap((o) => o.rules as PolicyRule[]);
    expect(rules.filter((r) => !usedRules.has(r))).toEqual([]);
  });
});

describe('admission harness: the chart with cert-manager and non-default injection values', () => {
  let c: ChartCluster;
  let objects: K8sObject[];
  beforeAll(async () => {
    ensureBuilt();
    objects = render({
      replicas: 1,
      certManager: { enabled: true },
      webhook: { failurePolicy: 'Ignore', timeoutSeconds: 5 },
      image: { repository: 'registry.example.com/platform/aigress', tag: '0.1.0-rc1', pullPolicy: 'Always' },
      injection: { nativeSidecar: 'never', proxy: { uid: 2000, gid: 2000 }, capture: { includeOutboundPorts: [443], excludeOutboundCidrs: ['169.254.169.254/32'] } },
    });
    // what cert-manager would have put into the Certificate's Secret (the chart's self-signed Issuer: ca.crt = tls.crt)
    const ca = await createCA('aigress CA (cert-manager)');
    c = await startFromChart(objects, {
      secrets: { 'aigress-ca': { 'tls.crt': ca.certPem, 'tls.key': ca.keyPem, 'ca.crt': ca.certPem } },
      setup: (api) => api.put('v1', 'namespaces', { metadata: { name: 'team-a', labels: ENABLED } }),
    });
    expect(caBundlePem(c.mwc())).toBe(ca.certPem); // the same bytes cert-manager's cainjector would write
  }, 120_000);
  afterAll(async () => {
    if (c) expect(await c.stop()).toBe(0);
  });

  it('injects with the configured image, UID and capture, as a regular container (nativeSidecar: never)', async () => {
    const pod = appPod();
    const r = await admit(c, pod, { name: 'team-a', labels: ENABLED });
    expect(r).toMatchObject({ called: true, allowed: true });
    const injected = applied(pod, r.patch as Operation[]);
    expectValidPod(injected);
    const proxy = injected.spec.containers.find((x) => x.name === 'aigress-proxy')!;
    expect(proxy.image).toBe('registry.example.com/platform/aigress:0.1.0-rc1');
    expect(injected.spec.containers[0]!.name).toBe('aigress-proxy');
    const init = injected.spec.initContainers!.find((x) => x.name === 'aigress-init')!;
    expect(init.args).toEqual(expect.arrayContaining(['--proxy-uid', '2000', '--include-outbound-ports', '443', '--exclude-outbound-cidrs', '169.254.169.254/32']));
    expect(c.mwc().webhooks[0]).toMatchObject({ failurePolicy: 'Ignore', timeoutSeconds: 5 });
  });

  it('a container running as the configured proxy UID is denied', async () => {
    const pod = appPod();
    (pod.spec.containers[0] as unknown as Obj).securityContext = { runAsUser: 2000 };
    const r = await admit(c, pod, { name: 'team-a', labels: ENABLED });
    expect(r).toMatchObject({ called: true, allowed: false });
  });

  it('loads the CA from the mounted files and reads no Secret but the credentials\' list/watch of its namespace', () => {
    expect(c.output()).toMatch(/"origin":"files [^"]*\/etc\/aigress\/ca"/);
    const { denied } = everyRequestAuthorized(c);
    expect(denied).toEqual([]);
    const secretCalls = c.api.requests.filter((r) => r.path.includes('/secrets'));
    expect(secretCalls.length).toBeGreaterThan(0);
    for (const r of secretCalls) expect([r.method, r.path]).toEqual(['GET', `/api/v1/namespaces/${NAMESPACE}/secrets`]);
  });
});
