import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import jsonpatch from 'fast-json-patch';
import { ANNOTATION_STATUS, VERSION } from '../../../shared/constants.js';
import { createCA } from '../../../shared/pki.js';
import { chartCrds } from '../../../cli/chart-files.js';
import { defaultConfig } from '../../../webhook/config.js';
import { inject } from '../../../webhook/inject/inject.js';
import { FakeApiServer, type PodAdmission } from '../../support/fake-apiserver.js';
import { writeKubeconfig } from '../../support/kubeconfig.js';

// A cluster with aigress installed and healthy, in the fake API server, for `aigress check` and `aigress version`:
// the chart's CRDs, the control plane Deployment with its replicas ready, the CA Secret, the webhook with that CA
// as caBundle, an opted-in namespace with an accepted EgressPolicy and an injected pod, and an admission chain
// that runs the webhook's own decision (inject + RFC 6902 patch). Tests break one thing at a time.

type Obj = Record<string, unknown>;
export const NS = 'aigress-system';

/** Pod admission as the webhook answers it: inject's JSONPatch applied, as the API server would. */
export const injectingAdmission: PodAdmission = async (pod, namespace) => {
  const r = inject(pod, { namespace }, defaultConfig().injection);
  if (r.denied) return { allowed: false, code: r.denied.code, message: `admission webhook "pods.aigress.io" denied the request: ${r.denied.message}` };
  return { allowed: true, pod: jsonpatch.applyPatch(pod, r.patch as jsonpatch.Operation[], true, false).newDocument as Obj };
};

export interface FixtureCluster {
  api: FakeApiServer;
  kubeconfig: string;
  caPem: string;
  close(): Promise<void>;
}

export async function healthyCluster(opts: { caValidityDays?: number } = {}): Promise<FixtureCluster> {
  const api = await FakeApiServer.start();
  const dir = mkdtempSync(join(tmpdir(), 'aigress-check-'));
  const kubeconfig = join(dir, 'kubeconfig');
  await writeKubeconfig(kubeconfig, api, 'operator');
  for (const crd of Object.values(chartCrds()!)) api.put('apiextensions.k8s.io/v1', 'customresourcedefinitions', crd as Obj);
  api.put('v1', 'namespaces', { metadata: { name: NS } });
  api.put('apps/v1', 'deployments', {
    metadata: { name: 'aigress', namespace: NS, labels: { 'app.kubernetes.io/name': 'aigress', 'app.kubernetes.io/version': VERSION } },
    spec: { replicas: 2, template: { spec: { containers: [{ name: 'control-plane', image: `ghcr.io/aigress/aigress:${VERSION}` }] } } },
  });
  api.putStatus('apps/v1', 'deployments', NS, 'aigress', { replicas: 2, readyReplicas: 2 });
  const ca = await createCA('aigress CA', opts.caValidityDays ?? 3650);
  api.put('v1', 'secrets', {
    metadata: { name: 'aigress-ca', namespace: NS },
    type: 'kubernetes.io/tls',
    data: { 'tls.crt': Buffer.from(ca.certPem).toString('base64'), 'tls.key': Buffer.from(ca.keyPem).toString('base64') },
  });
  api.put('admissionregistration.k8s.io/v1', 'mutatingwebhookconfigurations', {
    metadata: { name: 'aigress' },
    webhooks: [{ name: 'pods.aigress.io', clientConfig: { caBundle: Buffer.from(ca.certPem).toString('base64'), service: { name: 'aigress', namespace: NS } } }],
  });
  api.put('v1', 'namespaces', { metadata: { name: 'team-a', labels: { 'aigress.io/inject': 'enabled', 'pod-security.kubernetes.io/enforce': 'privileged' } } });
  api.put('v1', 'namespaces', { metadata: { name: 'other' } });
  api.put('aigress.io/v1alpha1', 'egresspolicies', { apiVersion: 'aigress.io/v1alpha1', kind: 'EgressPolicy', metadata: { name: 'eu-only', namespace: 'team-a' }, spec: { regions: { allow: ['eu'] } } });
  acceptPolicy(api, 'team-a', 'eu-only', 'True', 'Accepted', 'in effect');
  api.put('v1', 'pods', injectedPod('team-a', 'chat-1', VERSION));
  api.podAdmission = injectingAdmission;
  return { api, kubeconfig, caPem: ca.certPem, close: () => api.close() };
}

export function acceptPolicy(api: FakeApiServer, ns: string, name: string, status: 'True' | 'False', reason: string, message: string): void {
  const generation = (api.get('aigress.io/v1alpha1', 'egresspolicies', ns, name)!.metadata as Obj).generation as number;
  api.putStatus('aigress.io/v1alpha1', 'egresspolicies', ns, name, {
    observedGeneration: generation,
    conditions: [{ type: 'Accepted', status, reason, message, observedGeneration: generation, lastTransitionTime: '2026-01-01T00:00:00Z' }],
  });
}

export function injectedPod(ns: string, name: string, version: string): Obj {
  return {
    metadata: { name, namespace: ns, annotations: { [ANNOTATION_STATUS]: JSON.stringify({ version, initContainers: ['aigress-init', 'aigress-proxy'], containers: [], volumes: [] }) } },
    spec: { containers: [{ name: 'app', image: 'app' }] },
  };
}
