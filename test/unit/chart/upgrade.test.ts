import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { createCA } from '../../../shared/pki.js';
import { FakeApiServer } from '../../support/fake-apiserver.js';
import { helmAsync } from '../../support/helm-server.js';
import { writeKubeconfig } from '../../support/kubeconfig.js';
import { CHART, find, NAMESPACE, template, type K8sObject } from './render.js';

// `helm upgrade` must not empty the webhook's caBundle (the API server could not call the webhook until the
// control plane wrote it back, and admission fails closed). The chart keeps the live value with `lookup`; this
// renders the chart with the real helm against the fake API server holding the object as an earlier install and
// the control plane left it (`helm template --dry-run=server`, which runs lookup against the cluster).

describe('helm upgrade over an existing MutatingWebhookConfiguration', () => {
  let api: FakeApiServer;
  let kubeconfig: string;
  let caPem: string;
  beforeAll(async () => {
    api = await FakeApiServer.start();
    kubeconfig = join(mkdtempSync(join(tmpdir(), 'aigress-upgrade-')), 'kubeconfig');
    await writeKubeconfig(kubeconfig, api, 'helm');
    caPem = (await createCA('aigress CA in the cluster')).certPem;
  });
  afterAll(async () => {
    await api?.close();
  });

  const render = async (): Promise<K8sObject> => {
    const r = await helmAsync(['template', 'aigress', CHART, '--namespace', NAMESPACE, '--dry-run=server', '--disable-openapi-validation', '--kubeconfig', kubeconfig], { kubeconfig });
    if (r.code !== 0) throw new Error(`helm template --dry-run=server failed: ${r.stderr}`);
    const objects = parseAllDocuments(r.stdout).map((d) => d.toJS() as K8sObject | null).filter((o): o is K8sObject => o !== null);
    return find(objects, 'MutatingWebhookConfiguration', 'aigress');
  };
  const bundleOf = (mwc: K8sObject): unknown => (mwc.webhooks as Array<{ clientConfig: { caBundle?: string } }>)[0]!.clientConfig.caBundle;

  it('renders no caBundle on a first install (nothing to keep) and without a cluster', async () => {
    expect(bundleOf(await render())).toBeUndefined();
    expect(template().stdout).not.toContain('caBundle:');
    // helm looked for the live object, by name
    expect(api.requests.some((q) => q.method === 'GET' && q.path === '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/aigress')).toBe(true);
  });

  it('keeps the caBundle the control plane wrote, on an upgrade', async () => {
    const bundle = Buffer.from(caPem).toString('base64');
    api.put('admissionregistration.k8s.io/v1', 'mutatingwebhookconfigurations', {
      metadata: {
        name: 'aigress',
        labels: { 'app.kubernetes.io/managed-by': 'Helm' },
        annotations: { 'meta.helm.sh/release-name': 'aigress', 'meta.helm.sh/release-namespace': NAMESPACE },
      },
      webhooks: [{ name: 'pods.aigress.io', clientConfig: { caBundle: bundle, service: { name: 'aigress', namespace: NAMESPACE, path: '/mutate', port: 443 } } }],
    });
    const mwc = await render();
    expect(bundleOf(mwc)).toBe(bundle);
    // everything else is the chart's, as rendered without a cluster
    const offline = find(parseAllDocuments(template().stdout).map((d) => d.toJS() as K8sObject).filter(Boolean), 'MutatingWebhookConfiguration', 'aigress');
    const strip = (o: K8sObject): unknown => JSON.parse(JSON.stringify(o, (k, v: unknown) => (k === 'caBundle' ? undefined : v)));
    expect(strip(mwc)).toEqual(strip(offline));
  });
});
