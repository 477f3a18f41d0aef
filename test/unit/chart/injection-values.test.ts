import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { validateConfig, type WebhookConfig } from '../../../webhook/config.js';
import { inject } from '../../../webhook/inject/inject.js';
import { find, render, template } from './render.js';

// injection.image and the capture settings only the config file had: `helm template` with the real helm binary,
// the rendered config read by the control plane's own parser, and what it injects from it.

type Container = { name: string; image: string; imagePullPolicy?: string; args?: string[] };

function injectionOf(values?: unknown): WebhookConfig['injection'] {
  const objects = render(values, ['--set', 'image.tag=0.9.0']);
  const cm = find(objects, 'ConfigMap', 'aigress-config') as unknown as { data: Record<string, string> };
  const cfg = validateConfig(parse(Object.values(cm.data)[0]!));
  if (!cfg.ok) throw new Error(`the control plane refuses the rendered config: ${JSON.stringify(cfg)}`);
  return cfg.config.injection;
}

function controlPlaneImage(values?: unknown): string {
  const d = find(render(values, ['--set', 'image.tag=0.9.0']), 'Deployment', 'aigress') as unknown as { spec: { template: { spec: { containers: Container[] } } } };
  return d.spec.template.spec.containers[0]!.image;
}

function injectedContainers(injection: WebhookConfig['injection'], pod: unknown = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec: { containers: [{ name: 'app', image: 'a' }] } }): Container[] {
  const r = inject(pod as never, { namespace: 'team-a' }, injection);
  const spec = r.pod?.spec as { containers: Container[]; initContainers?: Container[] } | undefined;
  if (!spec) throw new Error(`not injected: ${r.reason}`);
  return [...(spec.initContainers ?? []), ...spec.containers].filter((c) => c.name.startsWith('aigress-'));
}

describe('helm template: injection.image', () => {
  it('defaults to the control plane\'s image and pull policy (the behaviour before the value existed)', () => {
    const inj = injectionOf();
    expect(inj.image).toBe('ghcr.io/aigress/aigress:0.9.0');
    expect(inj.image).toBe(controlPlaneImage());
    expect(inj.imagePullPolicy).toBe('IfNotPresent');
    const digest = `sha256:${'a'.repeat(64)}`;
    expect(injectionOf({ image: { digest } }).image).toBe(`ghcr.io/aigress/aigress@${digest}`);
  });

  it('a repository gives the injected containers the sidecar image; the control plane keeps its own', () => {
    const values = { injection: { image: { repository: 'registry.example/aigress-sidecar', pullPolicy: 'Always' } } };
    const inj = injectionOf(values);
    expect(inj.image).toBe('registry.example/aigress-sidecar:0.9.0'); // the tag follows image.tag
    expect(inj.imagePullPolicy).toBe('Always');
    expect(controlPlaneImage(values)).toBe('ghcr.io/aigress/aigress:0.9.0');
    const injected = injectedContainers(inj);
    expect(injected.map((c) => c.name).sort()).toEqual(['aigress-init', 'aigress-proxy']);
    for (const c of injected) {
      expect(c.image).toBe('registry.example/aigress-sidecar:0.9.0');
      expect(c.imagePullPolicy).toBe('Always');
    }
  });

  it('its own tag, or a digest that wins over it', () => {
    expect(injectionOf({ injection: { image: { repository: 'r.example/s', tag: '1.2.3' } } }).image).toBe('r.example/s:1.2.3');
    const digest = `sha256:${'b'.repeat(64)}`;
    expect(injectionOf({ injection: { image: { repository: 'r.example/s', tag: '1.2.3', digest } } }).image).toBe(`r.example/s@${digest}`);
  });

  it('the schema refuses a misspelt key or a bad digest, naming the value', () => {
    const typo = template({ injection: { image: { repo: 'x' } } });
    expect(typo.code).not.toBe(0);
    expect(typo.stderr).toMatch(/injection\/image.*repo/);
    const bad = template({ injection: { image: { repository: 'x', digest: 'latest' } } });
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('digest');
  });
});

describe('helm template: injection.capture Kubernetes API and mesh settings', () => {
  it('defaults agree with the control plane\'s own', () => {
    const cap = injectionOf().capture;
    expect(cap.excludeKubernetesApi).toBe(true);
    expect(cap.kubernetesApiAddress).toBe('');
    expect(cap.meshProxyUids).toEqual({ istio: 1337, linkerd: 2102 });
  });

  it('excludeKubernetesApi, kubernetesApiAddress and meshProxyUids reach the config and the injected init container', () => {
    const inj = injectionOf({ injection: { capture: { kubernetesApiAddress: '10.96.7.1', meshProxyUids: { istio: 4242 } } } });
    expect(inj.capture.kubernetesApiAddress).toBe('10.96.7.1');
    expect(inj.capture.meshProxyUids).toEqual({ istio: 4242, linkerd: 2102 });
    const meshPod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec: { containers: [{ name: 'app', image: 'a' }, { name: 'istio-proxy', image: 'istio/proxyv2' }] } };
    const init = injectedContainers(inj, meshPod).find((c) => c.name === 'aigress-init')!;
    const args = init.args!.join(' ');
    expect(args).toMatch(/--exclude-outbound-cidrs 10\.96\.7\.1\/32/);
    expect(args).toMatch(/--exclude-uids 4242/);

    const off = injectionOf({ injection: { capture: { excludeKubernetesApi: false, kubernetesApiAddress: '10.96.7.1' } } });
    expect(off.capture.excludeKubernetesApi).toBe(false);
    const offArgs = injectedContainers(off).find((c) => c.name === 'aigress-init')!.args!.join(' ');
    expect(offArgs).not.toContain('10.96.7.1');
  });

  it('the schema types them', () => {
    for (const capture of [{ excludeKubernetesApi: 'yes' }, { kubernetesApiAddress: 'kubernetes.default' }, { meshProxyUids: { istio: 0 } }, { meshProxyUids: { cilium: 1 } }]) {
      const r = template({ injection: { capture } });
      expect(r.code, JSON.stringify(capture)).not.toBe(0);
      expect(r.stderr).toContain('injection/capture');
    }
  });
});
