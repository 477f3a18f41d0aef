import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { VERSION } from '../../../shared/constants.js';
import { createCA } from '../../../shared/pki.js';
import { FakeApiServer } from '../../support/fake-apiserver.js';
import { writeKubeconfig } from '../../support/kubeconfig.js';
import { ensureBuilt, runCli, type CliRun } from '../inject/built-cli.js';
import { acceptPolicy, healthyCluster, injectedPod, NS, type FixtureCluster } from './cluster-fixture.js';

// `aigress check` (the built binary) against the fake API server: a healthy install passes every check; each
// way of breaking it fails (or warns) the check that is about it, with a hint, and the exit code says so.

beforeAll(() => ensureBuilt(['dist/cli/check.js']), 180_000);

let cluster: FixtureCluster | undefined;
afterEach(async () => {
  await cluster?.close();
  cluster = undefined;
});

type Result = { id: string; status: string; message: string; hint?: string };
const check = async (c: FixtureCluster, extra: string[] = []): Promise<CliRun & { results: Result[] }> => {
  const r = await runCli(['check', '--kubeconfig', c.kubeconfig, '-o', 'json', ...extra]);
  return { ...r, results: r.stdout ? (JSON.parse(r.stdout) as { results: Result[] }).results : [] };
};
const byId = (results: Result[], id: string): Result => {
  const r = results.find((x) => x.id === id);
  if (!r) throw new Error(`no check ${id} in ${results.map((x) => x.id).join(', ')}`);
  return r;
};

async function emptyCluster(opts: { gitVersion?: string } = {}): Promise<FixtureCluster> {
  const api = await FakeApiServer.start(opts);
  const kubeconfig = join(mkdtempSync(join(tmpdir(), 'aigress-pre-')), 'kubeconfig');
  await writeKubeconfig(kubeconfig, api, 'operator');
  return { api, kubeconfig, caPem: '', close: () => api.close() };
}

describe('aigress check', () => {
  it('passes every check on a healthy install, exit 0, one line per check', async () => {
    cluster = await healthyCluster();
    const r = await check(cluster);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.results.filter((x) => x.status !== 'ok')).toEqual([]);
    expect(r.results.map((x) => x.id)).toEqual([
      'kubernetes-api', 'kubernetes-version', 'crd egresspolicies.aigress.io', 'crd clusteregresspolicies.aigress.io',
      'control-plane', 'ca', 'webhook-ca-bundle', 'webhook-dry-run', 'namespace team-a', 'policy team-a/eu-only', 'proxy-versions',
    ]);
    expect(byId(r.results, 'webhook-dry-run').message).toMatch(/dry-run pod in team-a is injected/);
    // the dry run created nothing
    expect(cluster.api.get('v1', 'pods', 'team-a', 'chat-1')).toBeDefined();
    expect(cluster.api.requests.some((q) => q.method === 'POST' && q.path === '/api/v1/namespaces/team-a/pods' && q.query === '?dryRun=All')).toBe(true);
    const text = await runCli(['check', '--kubeconfig', cluster.kubeconfig]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^\[ok\] {3}kubernetes-api: reachable at https:\/\/127\.0\.0\.1:\d+\n/);
    expect(text.stdout).toMatch(/\ncheck passed: 11 ok, 0 warnings, 0 failed, 0 skipped\n$/);
  });

  it('fails, with a hint, each thing that is broken, and exits 1 naming them', async () => {
    cluster = await healthyCluster({ caValidityDays: 10 });
    const { api } = cluster;
    api.putStatus('apps/v1', 'deployments', NS, 'aigress', { replicas: 2, readyReplicas: 0 });
    const other = await createCA('someone else');
    api.put('admissionregistration.k8s.io/v1', 'mutatingwebhookconfigurations', {
      metadata: { name: 'aigress' }, webhooks: [{ name: 'pods.aigress.io', clientConfig: { caBundle: Buffer.from(other.certPem).toString('base64') } }],
    });
    api.put('v1', 'namespaces', { metadata: { name: 'team-r', labels: { 'aigress.io/inject': 'enabled', 'pod-security.kubernetes.io/enforce': 'restricted' } } });
    api.put('aigress.io/v1alpha1', 'egresspolicies', { apiVersion: 'aigress.io/v1alpha1', kind: 'EgressPolicy', metadata: { name: 'typo', namespace: 'team-r' }, spec: { providers: ['openaii'] } });
    acceptPolicy(api, 'team-r', 'typo', 'False', 'Invalid', 'spec.providers[0]: unknown provider "openaii"');
    api.put('v1', 'pods', injectedPod('team-a', 'old-1', '0.0.9'));
    api.podAdmission = async () => ({ allowed: false, code: 500, message: 'Internal error occurred: failed calling webhook "pods.aigress.io": connection refused' });
    const crd = api.get('apiextensions.k8s.io/v1', 'customresourcedefinitions', undefined, 'egresspolicies.aigress.io')!;
    ((crd.spec as { versions: Array<Record<string, unknown>> }).versions[0]!).additionalPrinterColumns = [];
    api.put('apiextensions.k8s.io/v1', 'customresourcedefinitions', crd);

    const r = await check(cluster);
    expect(r.code).toBe(1);
    expect(byId(r.results, 'control-plane')).toMatchObject({ status: 'fail', message: expect.stringMatching(/^0 of 2 replicas ready/) });
    expect(byId(r.results, 'ca')).toMatchObject({ status: 'warn', message: expect.stringMatching(/the CA expires in 9 days/) });
    expect(byId(r.results, 'webhook-ca-bundle')).toMatchObject({ status: 'fail', message: expect.stringMatching(/caBundle is not the CA/) });
    expect(byId(r.results, 'webhook-dry-run')).toMatchObject({ status: 'fail', message: expect.stringMatching(/failed calling webhook/) });
    expect(byId(r.results, 'namespace team-r')).toMatchObject({ status: 'fail', message: expect.stringMatching(/Pod Security "restricted" is enforced: it refuses the aigress-init container/), hint: expect.stringMatching(/pod-security.kubernetes.io\/enforce=privileged/) });
    expect(byId(r.results, 'policy team-r/typo')).toMatchObject({ status: 'fail', message: expect.stringMatching(/not accepted \(Invalid\): spec.providers\[0\]/) });
    expect(byId(r.results, 'proxy-versions')).toMatchObject({ status: 'warn', message: `control plane ${VERSION}; 1 on 0.0.9 (e.g. team-a/old-1)` });
    expect(byId(r.results, 'crd egresspolicies.aigress.io')).toMatchObject({ status: 'fail', message: expect.stringMatching(/schema differs/), hint: expect.stringMatching(/kubectl apply --server-side -f charts\/aigress\/crds/) });
    expect(byId(r.results, 'crd clusteregresspolicies.aigress.io').status).toBe('ok');
    expect(r.stderr).toBe('aigress: 6 checks failed: crd egresspolicies.aigress.io, control-plane, webhook-ca-bundle, webhook-dry-run, namespace team-r, policy team-r/typo\n');
  });

  it('reports a missing install: no Deployment, no CA Secret, no webhook, no CRD', async () => {
    cluster = await healthyCluster();
    const { api } = cluster;
    api.remove('apps/v1', 'deployments', NS, 'aigress');
    api.remove('v1', 'secrets', NS, 'aigress-ca');
    api.remove('admissionregistration.k8s.io/v1', 'mutatingwebhookconfigurations', undefined, 'aigress');
    api.remove('apiextensions.k8s.io/v1', 'customresourcedefinitions', undefined, 'clusteregresspolicies.aigress.io');
    const r = await check(cluster);
    expect(r.code).toBe(1);
    expect(byId(r.results, 'control-plane').message).toBe(`no Deployment aigress in namespace ${NS}`);
    expect(byId(r.results, 'ca').message).toBe(`no Secret ${NS}/aigress-ca`);
    expect(byId(r.results, 'webhook-ca-bundle').message).toMatch(/no MutatingWebhookConfiguration aigress/);
    expect(byId(r.results, 'crd clusteregresspolicies.aigress.io')).toMatchObject({ status: 'fail', message: 'not installed' });
  });

  it('warns on a cluster without native sidecars', async () => {
    cluster = await emptyCluster({ gitVersion: 'v1.28.9' });
    const r = await check(cluster, ['--pre']);
    expect(byId(r.results, 'kubernetes-version')).toMatchObject({ status: 'warn', message: expect.stringMatching(/^v1\.28\.9: no native sidecars/) });
  });

  it('--pre: passes on an empty cluster and flags an existing install and restricted opted-in namespaces', async () => {
    cluster = await emptyCluster();
    const { api } = cluster;
    let r = await check(cluster, ['--pre']);
    expect(r.code).toBe(0);
    expect(r.results.map((x) => [x.id, x.status])).toEqual([
      ['kubernetes-api', 'ok'], ['kubernetes-version', 'ok'], ['existing-install', 'ok'],
      ['crd egresspolicies.aigress.io', 'ok'], ['crd clusteregresspolicies.aigress.io', 'ok'], ['namespaces', 'ok'],
    ]);
    expect(api.requests.filter((q) => q.method !== 'GET')).toEqual([]); // --pre writes nothing, not even a dry run
    api.put('admissionregistration.k8s.io/v1', 'mutatingwebhookconfigurations', { metadata: { name: 'aigress' }, webhooks: [] });
    api.put('v1', 'namespaces', { metadata: { name: 'team-b', labels: { 'aigress.io/inject': 'enabled', 'pod-security.kubernetes.io/enforce': 'baseline' } } });
    r = await check(cluster, ['--pre']);
    expect(r.code).toBe(1);
    expect(byId(r.results, 'existing-install').status).toBe('fail');
    expect(byId(r.results, 'namespace team-b')).toMatchObject({ status: 'fail', message: expect.stringMatching(/Pod Security "baseline"/) });
  });

  it('fails the API check, with a hint, when the cluster cannot be reached, and refuses bad flags with exit 2', async () => {
    cluster = await healthyCluster();
    await cluster.api.close();
    const r = await check(cluster);
    expect(r.code).toBe(1);
    expect(r.results).toEqual([expect.objectContaining({ id: 'kubernetes-api', status: 'fail', hint: expect.stringMatching(/kubeconfig/) })]);
    cluster = undefined;
    expect((await runCli(['check', '--ca-warn-days', 'soon'])).code).toBe(2);
    const missing = await runCli(['check', '--kubeconfig', '/nonexistent/kubeconfig']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^aigress: --kubeconfig \/nonexistent\/kubeconfig: /);
  });
});

describe('aigress version', () => {
  it('prints the client version, and with a kubeconfig the control plane\'s and the proxies\'', async () => {
    expect(await runCli(['version', '--short'])).toEqual({ code: 0, stdout: `${VERSION}\n`, stderr: '' });
    expect((await runCli(['version'])).stdout).toBe(`client: ${VERSION}\n`);
    cluster = await healthyCluster();
    cluster.api.put('v1', 'pods', injectedPod('team-a', 'old-1', '0.0.9'));
    cluster.api.put('v1', 'pods', injectedPod('team-a', 'old-2', '0.0.9'));
    const r = await runCli(['version', '--kubeconfig', cluster.kubeconfig]);
    expect(r).toEqual({ code: 0, stderr: '', stdout: `client: ${VERSION}\ncontrol plane: ${VERSION}\nproxies: ${VERSION} (1 pod), 0.0.9 (2 pods)\n` });
    const j = await runCli(['version', '--kubeconfig', cluster.kubeconfig, '-o', 'json']);
    expect(JSON.parse(j.stdout)).toEqual({ client: VERSION, controlPlane: VERSION, proxies: { [VERSION]: 1, '0.0.9': 2 } });
  });
});
