import { afterEach, describe, expect, it } from 'vitest';
import type { EgressPolicySpec } from '../../../shared/policy/types.js';
import { defaultPolicySpec } from '../../../shared/policy/validate.js';
import { kubeClients, kubeConfigFor } from '../../../webhook/kube.js';
import { evaluateClusterDefault, PolicyController, type Condition, type PolicyResource } from '../../../webhook/policy/controller.js';
import { PolicyStore } from '../../../webhook/policy/store.js';
import { FakeApiServer } from '../../support/fake-apiserver.js';
import { captureLogger } from '../../support/log.js';

// The ClusterEgressPolicy `default`: the GitOps way to set the cluster default, next to the chart's value. The
// controller serves it to every opted-in namespace (merged under their own policies), keeps the previous default
// when it is invalid, goes back to the chart's value when it is deleted, and ignores any other name.

const EP = 'aigress.io/v1alpha1';
const chart: EgressPolicySpec = { ...defaultPolicySpec(), providers: ['openai', 'anthropic'] };
const cep = (name: string, spec: unknown): PolicyResource => ({ apiVersion: EP, kind: 'ClusterEgressPolicy', metadata: { name }, spec });

const waitFor = async <T>(fn: () => T | undefined | false, ms = 5000): Promise<T> => {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe('evaluateClusterDefault (pure)', () => {
  it('uses the chart value without a resource, the resource when valid, the previous default when invalid', () => {
    expect(evaluateClusterDefault([], chart, chart)).toMatchObject({ defaults: chart, source: 'chart' });
    const good = evaluateClusterDefault([cep('default', { providers: ['mistral'] })], chart, chart);
    expect(good.source).toBe('resource');
    expect(good.defaults.providers).toEqual(['mistral']);
    expect(good.verdicts.get('default')).toMatchObject({ status: 'True', reason: 'Accepted' });
    const bad = evaluateClusterDefault([cep('default', { providers: ['openaii'] })], chart, good.defaults);
    expect(bad).toMatchObject({ source: 'previous', defaults: good.defaults });
    expect(bad.verdicts.get('default')).toMatchObject({ status: 'False', reason: 'Invalid', message: expect.stringMatching(/^spec.providers\[0\]: unknown provider "openaii".*; the previous cluster default stays in force$/) });
    const overlap = evaluateClusterDefault([cep('default', { models: { allow: ['a'], deny: ['a'] } })], chart, chart);
    expect(overlap.verdicts.get('default')?.message).toMatch(/both allowed .* and denied/);
    expect(evaluateClusterDefault([cep('prod', {})], chart, chart).verdicts.get('prod')).toMatchObject({ status: 'False', reason: 'NotDefault' });
  });
});

describe('PolicyController with a ClusterEgressPolicy', () => {
  let api: FakeApiServer | undefined;
  let controller: PolicyController | undefined;
  afterEach(async () => {
    controller?.stop();
    await api?.close();
  });

  async function start(opts: { without?: string[] } = {}): Promise<{ store: PolicyStore; api: FakeApiServer; controller: PolicyController }> {
    api = await FakeApiServer.start(opts);
    const clients = kubeClients(kubeConfigFor({ server: api.url, caPem: api.caPem, token: api.adminToken, tlsServerName: 'localhost' }));
    const store = new PolicyStore();
    api.put('v1', 'namespaces', { metadata: { name: 'team-a', labels: { 'aigress.io/inject': 'enabled' } } });
    api.put('v1', 'namespaces', { metadata: { name: 'team-b', labels: { 'aigress.io/inject': 'enabled' } } });
    api.put(EP, 'egresspolicies', { apiVersion: EP, kind: 'EgressPolicy', metadata: { name: 'own', namespace: 'team-b' }, spec: { regions: { allow: ['eu'] } } });
    controller = new PolicyController({ clients, defaults: chart, store, log: captureLogger().log, ownNamespace: 'aigress-system', watchTimeoutSeconds: 30 });
    return { store, api, controller };
  }
  const providersOf = (store: PolicyStore, ns: string): unknown => {
    const e = store.get(ns);
    return e?.kind === 'policy' ? e.policy.spec.providers : undefined;
  };
  const accepted = (a: FakeApiServer, name: string): Condition | undefined =>
    ((a.get(EP, 'clusteregresspolicies', undefined, name)?.status as { conditions?: Condition[] } | undefined)?.conditions ?? []).find((c) => c.type === 'Accepted');

  it('serves the resource as the default, live: created, made invalid (kept), fixed, deleted (chart value back)', async () => {
    const { store, api: a, controller: c } = await start();
    await c.start();
    expect(providersOf(store, 'team-a')).toEqual(['openai', 'anthropic']);

    a.put(EP, 'clusteregresspolicies', cep('default', { providers: ['bedrock'], models: { deny: ['*-preview'] } }));
    await waitFor(() => JSON.stringify(providersOf(store, 'team-a')) === '["bedrock"]');
    // a namespace with its own policy gets it merged over the new default: its own regions, the default's denials
    const b = store.get('team-b');
    expect(b?.kind === 'policy' && [b.policy.spec.providers, b.policy.spec.regions.allow, b.policy.spec.models.deny]).toEqual([['bedrock'], ['eu'], ['*-preview']]);
    await waitFor(() => accepted(a, 'default')?.status === 'True');

    a.put(EP, 'clusteregresspolicies', cep('default', { providers: ['bedrock', 'openaii'] }));
    await waitFor(() => accepted(a, 'default')?.status === 'False');
    expect(accepted(a, 'default')).toMatchObject({ reason: 'Invalid', message: expect.stringMatching(/spec.providers\[1\]: unknown provider "openaii"/) });
    expect(providersOf(store, 'team-a')).toEqual(['bedrock']);

    a.remove(EP, 'clusteregresspolicies', undefined, 'default');
    await waitFor(() => JSON.stringify(providersOf(store, 'team-a')) === '["openai","anthropic"]');
    expect(c.clusterDefault()).toEqual(chart);
  });

  it('starts with the resource already there, and marks any other name as having no effect', async () => {
    const { store, api: a, controller: c } = await start();
    a.put(EP, 'clusteregresspolicies', cep('default', { providers: ['mistral'] }));
    a.put(EP, 'clusteregresspolicies', cep('prod', { providers: ['gemini'] }));
    await c.start();
    expect(providersOf(store, 'team-a')).toEqual(['mistral']);
    await waitFor(() => accepted(a, 'prod')?.reason === 'NotDefault');
  });

  it('starts without the ClusterEgressPolicy CRD (a cluster upgraded with helm upgrade): the chart value applies', async () => {
    const { store, controller: c } = await start({ without: ['clusteregresspolicies'] });
    await c.start();
    expect(providersOf(store, 'team-a')).toEqual(['openai', 'anthropic']);
    expect(store.isSynced()).toBe(true);
  });
});
