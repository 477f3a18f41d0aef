// Injection's SDK key placeholders: when the namespace has a managed credential for openai / anthropic, app
// containers that set no OPENAI_API_KEY / ANTHROPIC_API_KEY get a documented placeholder (the SDKs refuse to
// start without one), with an admission warning; a container's own value, or an envFrom that may hold one,
// is left alone. Then through the whole control plane: /mutate for a namespace whose policy names credentials.
import jsonpatch, { type Operation } from 'fast-json-patch';
import { request, Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultConfig } from '../../../webhook/config.js';
import { CREDENTIAL_PLACEHOLDER } from '../../../webhook/inject/env.js';
import { inject } from '../../../webhook/inject/inject.js';
import type { Pod } from '../../../webhook/inject/types.js';
import { CP_NAMESPACE, startLocalControlPlane, type LocalControlPlane } from '../../support/control-plane.js';
import { review as admissionReview } from '../../support/admission-review.js';

const pod = (containers: Record<string, unknown>[]): Pod =>
  ({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'app' }, spec: { containers } }) as unknown as Pod;
const envOf = (p: Pod | undefined, i: number): Record<string, string | undefined> =>
  Object.fromEntries((p!.spec.containers[i]!.env ?? []).map((e) => [e.name, e.value]));

describe('SDK key placeholders at injection', () => {
  const config = defaultConfig().injection;
  const containers = [
    { name: 'plain', image: 'app:1' },
    { name: 'own-key', image: 'app:1', env: [{ name: 'OPENAI_API_KEY', valueFrom: { secretKeyRef: { name: 'k', key: 'v' } } }] },
    { name: 'env-from', image: 'app:1', envFrom: [{ secretRef: { name: 'app-env' } }] },
  ];

  it('sets them only for providers with a managed credential, only where the container sets none', () => {
    const r = inject(pod(containers), { namespace: 'team-a', managedCredentials: ['openai', 'anthropic', 'bedrock'] }, config);
    expect(envOf(r.pod, 0)).toMatchObject({ OPENAI_API_KEY: CREDENTIAL_PLACEHOLDER, ANTHROPIC_API_KEY: CREDENTIAL_PLACEHOLDER });
    expect(envOf(r.pod, 1).OPENAI_API_KEY).toBeUndefined(); // its own (valueFrom) entry stays the only one
    expect(r.pod!.spec.containers[1]!.env!.filter((e) => e.name === 'OPENAI_API_KEY')).toHaveLength(1);
    expect(envOf(r.pod, 1).ANTHROPIC_API_KEY).toBe(CREDENTIAL_PLACEHOLDER);
    expect(envOf(r.pod, 2).OPENAI_API_KEY).toBeUndefined(); // envFrom may hold one: an env entry would override it
    expect(r.warnings.filter((w) => w.includes(CREDENTIAL_PLACEHOLDER))).toHaveLength(2);
    expect(r.warnings.join('\n')).toContain('docs/credentials.md');
  });

  it('sets nothing without a managed credential (the patch is what it was before)', () => {
    const a = inject(pod(containers), { namespace: 'team-a' }, config);
    const b = inject(pod(containers), { namespace: 'team-a', managedCredentials: ['mistral'] }, config);
    expect(b.patch).toEqual(a.patch);
    expect(JSON.stringify(a.patch)).not.toContain('API_KEY');
  });
});

describe('/mutate for a namespace with managed credentials', () => {
  let lcp: LocalControlPlane;
  const KEY = 'sk-never-in-a-pod-spec-9f8e7d';
  beforeAll(async () => {
    lcp = await startLocalControlPlane();
    lcp.enableNamespace('team-a');
    lcp.api.put('v1', 'secrets', { metadata: { name: 'openai-key', namespace: CP_NAMESPACE, annotations: { 'aigress.io/credential-namespaces': 'team-a' } }, stringData: { apiKey: KEY } });
    lcp.api.put('aigress.io/v1alpha1', 'egresspolicies', {
      apiVersion: 'aigress.io/v1alpha1', kind: 'EgressPolicy', metadata: { name: 'p', namespace: 'team-a' },
      spec: { credentials: [{ provider: 'openai', secretRef: { name: 'openai-key', key: 'apiKey' } }] },
    });
  }, 30_000);
  afterAll(async () => lcp?.close());

  it('gives the app the placeholder, says so in a warning, and the injected spec never holds the key', async () => {
    const dispatcher = new Agent({ connect: { ca: lcp.cp.caPem } });
    const ask = async () => {
      const res = await request(`${lcp.url}/mutate`, {
        method: 'POST', dispatcher, headers: { 'content-type': 'application/json' },
        body: JSON.stringify(admissionReview(pod([{ name: 'app', image: 'app:1' }]), { namespace: 'team-a' })),
      });
      return (await res.body.json()) as { response: { patch?: string; warnings?: string[] } };
    };
    let answer = await ask();
    for (let i = 0; i < 50 && !(answer.response.warnings ?? []).some((w) => w.includes(CREDENTIAL_PLACEHOLDER)); i++) {
      await new Promise((r) => setTimeout(r, 50));
      answer = await ask();
    }
    const ops = JSON.parse(Buffer.from(answer.response.patch!, 'base64').toString()) as Operation[];
    const injected = jsonpatch.applyPatch(structuredClone(pod([{ name: 'app', image: 'app:1' }])), ops, true, false).newDocument;
    expect(envOf(injected, injected.spec.containers.findIndex((c) => c.name === 'app')).OPENAI_API_KEY).toBe(CREDENTIAL_PLACEHOLDER);
    expect(answer.response.warnings!.join('\n')).toContain('OPENAI_API_KEY set to the placeholder');
    const text = JSON.stringify(injected);
    for (const form of [KEY, Buffer.from(KEY).toString('base64')]) expect(text).not.toContain(form);
    await dispatcher.close();
  });
});
