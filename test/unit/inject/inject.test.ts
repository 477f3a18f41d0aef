import fastJsonPatch from 'fast-json-patch';
import { describe, expect, it } from 'vitest';
import { defaultConfig, type InjectionConfig } from '../../../webhook/config.js';
import { inject } from '../../../webhook/inject/inject.js';
import type { Pod } from '../../../webhook/inject/types.js';

const { applyPatch, deepClone } = fastJsonPatch;
const config = defaultConfig().injection;
const ctx = { namespace: 'team-a' };

const pod = (spec: Partial<Pod['spec']> = {}, metadata: Pod['metadata'] = { name: 'p' }): Pod => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata,
  spec: { containers: [{ name: 'app', image: 'app:1' }], ...spec },
});

const names = (p: Pod | undefined, list: 'initContainers' | 'containers'): string[] => (p?.spec[list] ?? []).map((c) => c.name);

describe('inject', () => {
  it('returns a patch that, applied by an RFC 6902 library, gives exactly the pod it reports', () => {
    const input = pod({ initContainers: [{ name: 'migrate' }] });
    const r = inject(input, ctx, config);
    expect(r.reason).toBe('injected');
    expect(applyPatch(deepClone(input), r.patch as never, true, false).newDocument).toEqual(r.pod);
    expect(names(r.pod, 'initContainers')).toEqual(['aigress-init', 'aigress-proxy', 'migrate']);
    expect(r.pod!.spec.initContainers![1]!.restartPolicy).toBe('Always');
  });

  it('marks the pod with a status annotation naming what it injected', () => {
    const r = inject(pod(), ctx, config);
    expect(JSON.parse(r.pod!.metadata!.annotations!['aigress.io/status']!)).toEqual({
      version: '0.1.0',
      initContainers: ['aigress-init', 'aigress-proxy'],
      containers: [],
      volumes: ['aigress-ca', 'aigress-token', 'aigress-init-run'],
    });
  });

  it('is idempotent: a second pass over the injected pod changes nothing', () => {
    const once = inject(pod({ initContainers: [{ name: 'i' }] }), ctx, config);
    const twice = inject(once.pod, ctx, config);
    expect(twice).toMatchObject({ patch: [], warnings: [], reason: 'already-injected', skippedReason: 'already injected' });
  });

  it('on reinvocation wires only the container another webhook added since', () => {
    const once = inject(pod(), ctx, config).pod!;
    const added = deepClone(once) as Pod;
    added.spec.containers.push({ name: 'vault-agent', env: [{ name: 'SSL_CERT_FILE', value: '/vault/ca.pem' }] });
    const r = inject(added, ctx, config);
    expect(r.reason).toBe('updated');
    expect(r.patch.every((op) => op.path.startsWith('/spec/containers/1/'))).toBe(true);
    expect(r.warnings).toEqual([expect.stringMatching(/^container "vault-agent" already sets SSL_CERT_FILE/)]);
    expect(inject(r.pod, ctx, config).reason).toBe('already-injected');
  });

  it('re-injects a pod whose status annotation is stale (copied without the containers)', () => {
    const r = inject(pod({}, { name: 'p', annotations: { 'aigress.io/status': '{"version":"0.0.1"}' } }), ctx, config);
    expect(r.reason).toBe('injected');
    expect(JSON.parse(r.pod!.metadata!.annotations!['aigress.io/status']!).version).toBe('0.1.0');
  });

  it('keeps a volume the pod already has under an aigress name instead of adding a duplicate', () => {
    const r = inject(pod({ volumes: [{ name: 'aigress-ca', emptyDir: { medium: 'Memory' } }] }), ctx, config);
    expect(r.pod!.spec.volumes!.filter((v) => v.name === 'aigress-ca')).toEqual([{ name: 'aigress-ca', emptyDir: { medium: 'Memory' } }]);
  });

  it.each([
    ['hostNetwork', pod({ hostNetwork: true }), ctx, 'host-network'],
    ['a Windows pod', pod({ os: { name: 'windows' } }), ctx, 'windows'],
    ['kube-system', pod(), { namespace: 'kube-system' }, 'system-namespace'],
    ['kube-node-lease', pod(), { namespace: 'kube-node-lease' }, 'system-namespace'],
    ['the control plane namespace', pod(), { namespace: 'aigress-system' }, 'system-namespace'],
    ['the opt-out label', pod({}, { labels: { 'aigress.io/inject': 'disabled' } }), ctx, 'opt-out-label'],
    ['the opt-out annotation', pod({}, { annotations: { 'aigress.io/inject': 'false' } }), ctx, 'opt-out-annotation'],
  ])('skips %s with no patch and a reason', (_what, input, context, reason) => {
    const r = inject(input, context, config);
    expect(r).toMatchObject({ patch: [], reason });
    expect(r.skippedReason).toBeTruthy();
    expect(r.denied).toBeUndefined();
  });

  it('does not skip on other values of the opt-out label and annotation', () => {
    expect(inject(pod({}, { labels: { 'aigress.io/inject': 'enabled' }, annotations: { 'aigress.io/inject': 'true' } }), ctx, config).reason).toBe('injected');
  });

  it('takes the control plane namespace from the config', () => {
    const c: InjectionConfig = { ...config, controlPlane: { ...config.controlPlane, namespace: 'governance' } };
    expect(inject(pod(), { namespace: 'governance' }, c).reason).toBe('system-namespace');
    expect(inject(pod(), { namespace: 'aigress-system' }, c).reason).toBe('injected');
  });

  it('denies a container running as the proxy UID, from its own or the pod\'s securityContext', () => {
    const own = inject(pod({ containers: [{ name: 'a' }, { name: 'b', securityContext: { runAsUser: 1500 } }] }), ctx, config);
    expect(own.denied).toEqual({ code: 403, message: expect.stringMatching(/^container "b" runs as UID 1500 \(securityContext.runAsUser\), the aigress proxy's UID/) });
    const inherited = inject(pod({ securityContext: { runAsUser: 1500 } }), ctx, config);
    expect(inherited.denied?.message).toMatch(/^container "app" runs as UID 1500 \(the pod's securityContext.runAsUser\)/);
    // A container that overrides the pod's 1500 is fine.
    const overridden = inject(pod({ securityContext: { runAsUser: 1500 }, containers: [{ name: 'a', securityContext: { runAsUser: 1000 } }] }), ctx, config);
    expect(overridden.reason).toBe('injected');
    // The UID checked is the configured one.
    expect(inject(pod({ securityContext: { runAsUser: 1500 } }), ctx, { ...config, proxy: { ...config.proxy, uid: 2000 } }).reason).toBe('injected');
  });

  it('denies a container whose primary group is the proxy GID (capture exempts it too)', () => {
    const r = inject(pod({ securityContext: { runAsGroup: 1500 } }), ctx, config);
    expect(r).toMatchObject({ reason: 'identity-conflict', patch: [] });
    expect(r.denied?.message).toBe(
      'container "app" runs as GID 1500 (the pod\'s securityContext.runAsGroup), the aigress proxy\'s GID, so its traffic would bypass capture: run it as another GID, or opt the pod out with annotation aigress.io/inject: "false"',
    );
    // fsGroup and supplementalGroups are not primary groups: --gid-owner does not match them.
    expect(inject(pod({ securityContext: { fsGroup: 1500, supplementalGroups: [1500] } }), ctx, config).reason).toBe('injected');
  });

  it('denies a container that adds NET_ADMIN or NET_RAW, naming the container and the field', () => {
    const caps = (add: string[], drop?: string[]): Pod =>
      pod({ containers: [{ name: 'app' }, { name: 'net', securityContext: { capabilities: { add, ...(drop && { drop }) } } }] });
    const r = inject(caps(['NET_ADMIN']), ctx, config);
    expect(r).toMatchObject({ reason: 'capability-conflict', patch: [], warnings: [] });
    expect(r.denied).toEqual({
      code: 403,
      message:
        'container "net" adds NET_ADMIN (securityContext.capabilities.add), with which it could rewrite the pod\'s iptables rules or send raw packets and so bypass capture: drop it, or opt the pod out with annotation aigress.io/inject: "false"',
    });
    // Runtimes accept the CAP_ prefix and any case; ALL includes both.
    expect(inject(caps(['cap_net_raw']), ctx, config).denied?.message).toMatch(/^container "net" adds NET_RAW \(securityContext/);
    expect(inject(caps(['ALL']), ctx, config).denied?.message).toMatch(/^container "net" adds NET_ADMIN \(as ALL\) and NET_RAW \(as ALL\) .*: drop them,/);
    // Dropped by name again: the runtime applies the drop after the add.
    expect(inject(caps(['ALL'], ['NET_ADMIN', 'NET_RAW']), ctx, config).reason).toBe('injected');
    expect(inject(caps(['NET_ADMIN'], ['ALL']), ctx, config).reason).toBe('capability-conflict');
    // Capabilities that do not touch the network are no escape.
    expect(inject(caps(['NET_BIND_SERVICE', 'SYS_PTRACE']), ctx, config).reason).toBe('injected');
  });

  it('denies privileged containers and init containers, every one listed', () => {
    const r = inject(
      pod({
        initContainers: [{ name: 'setup', securityContext: { capabilities: { add: ['NET_ADMIN'] } } }],
        containers: [{ name: 'app', securityContext: { privileged: true, runAsUser: 1500 } }],
      }),
      ctx,
      config,
    );
    expect(r.reason).toBe('capability-conflict');
    const parts = r.denied!.message.split('; ');
    expect(parts.map((m) => /^container "([^"]+)" (\S+ \S+)/.exec(m)?.slice(1).join(' '))).toEqual(['setup adds NET_ADMIN', 'app runs as', 'app is privileged']);
    expect(parts[2]).toContain('(securityContext.privileged: true), which grants NET_ADMIN and NET_RAW');
    // aigress's own init container has NET_ADMIN by design: a pod injected before is not refused for it.
    const first = inject(pod(), ctx, config);
    expect(inject(first.pod, ctx, config).reason).toBe('already-injected');
  });

  it('lets a mesh\'s own init container keep NET_ADMIN, only in a pod of that mesh and only as an init container', () => {
    const istioInit = { name: 'istio-init', securityContext: { runAsUser: 0, capabilities: { add: ['NET_ADMIN', 'NET_RAW'] } } };
    const inMesh = { name: 'p', annotations: { 'sidecar.istio.io/status': '{}' } };
    expect(inject(pod({ initContainers: [istioInit] }, inMesh), ctx, config).reason).toBe('injected');
    // Without the mesh's marks the name proves nothing.
    expect(inject(pod({ initContainers: [istioInit] }), ctx, config).denied?.message).toMatch(/^container "istio-init" adds NET_ADMIN and NET_RAW/);
    // Nor does it as a regular container, or under the other mesh's name.
    expect(inject(pod({ containers: [{ name: 'app' }, istioInit] }, inMesh), ctx, config).reason).toBe('capability-conflict');
    expect(inject(pod({ initContainers: [{ ...istioInit, name: 'linkerd-init' }] }, inMesh), ctx, config).reason).toBe('capability-conflict');
    // Its identity is still checked.
    expect(inject(pod({ initContainers: [{ ...istioInit, securityContext: { ...istioInit.securityContext, runAsUser: 1500 } }] }, inMesh), ctx, config).reason).toBe('identity-conflict');
  });

  it('with escapingContainers: warn, injects such a pod and says why in a warning', () => {
    const warn: InjectionConfig = { ...config, capture: { ...config.capture, escapingContainers: 'warn' } };
    const input = pod({ securityContext: { runAsGroup: 1500 }, containers: [{ name: 'vpn', securityContext: { capabilities: { add: ['NET_ADMIN'] } } }] });
    const r = inject(input, ctx, warn);
    expect(r.reason).toBe('injected');
    expect(r.denied).toBeUndefined();
    expect(r.patch.length).toBeGreaterThan(0);
    expect(r.warnings.slice(0, 2)).toEqual([
      expect.stringMatching(/^container "vpn" runs as GID 1500 \(the pod's securityContext.runAsGroup\).*\(injection.capture.escapingContainers: warn admitted it\)$/),
      expect.stringMatching(/^container "vpn" adds NET_ADMIN \(securityContext.capabilities.add\).*\(injection.capture.escapingContainers: warn admitted it\)$/),
    ]);
    // The same pod under the default is refused with the same two messages.
    const denied = inject(input, ctx, config);
    expect(denied.denied?.message).toBe(r.warnings.slice(0, 2).map((w) => w.replace(' (injection.capture.escapingContainers: warn admitted it)', '')).join('; '));
  });

  it('refuses a malformed capabilities field with its path', () => {
    const r = inject(pod({ containers: [{ name: 'a', securityContext: { capabilities: { add: 'NET_ADMIN' as unknown as string[] } } }] }), ctx, config);
    expect(r.denied).toEqual({ code: 400, message: 'invalid pod: spec.containers[0].securityContext.capabilities.add: must be a list (got "NET_ADMIN")' });
  });

  it('denies an invalid object with the field path', () => {
    const r = inject({ metadata: {}, spec: { containers: [{ name: 'a', env: { A: '1' } }] } }, ctx, config);
    expect(r.denied).toEqual({ code: 400, message: 'invalid pod: spec.containers[0].env: must be a list (got an object)' });
  });

  it('with nativeSidecar never, puts the proxy first among the containers with a postStart hook and warns where it matters', () => {
    const c: InjectionConfig = { ...config, nativeSidecar: 'never' };
    const r = inject(pod({ restartPolicy: 'Never', initContainers: [{ name: 'fetch' }] }), ctx, c);
    expect(names(r.pod, 'initContainers')).toEqual(['aigress-init', 'fetch']);
    expect(names(r.pod, 'containers')).toEqual(['aigress-proxy', 'app']);
    const proxy = r.pod!.spec.containers[0]!;
    expect(proxy.restartPolicy).toBeUndefined();
    expect(proxy.lifecycle).toMatchObject({ postStart: { exec: { command: ['node', '-e', expect.stringContaining('/readyz')] } } });
    // The pod's own init containers run before the proxy has written the bundle: they are not pointed at it.
    expect(r.pod!.spec.initContainers![1]).toEqual({ name: 'fetch' });
    expect(r.warnings).toEqual([
      expect.stringMatching(/init containers fetch run before it/),
      expect.stringMatching(/restartPolicy Never the pod completes only after the app calls POST http:\/\/127.0.0.1:14020\/shutdown/),
    ]);
  });

  it.each([
    ['1.28', false],
    ['v1.28.9-eks-036c24b', false],
    ['1.29', true],
    ['v1.31.0', true],
    ['', true],
  ])('with nativeSidecar auto and kubernetesVersion %j, native = %s', (kubernetesVersion, native) => {
    const r = inject(pod(), ctx, { ...config, nativeSidecar: 'auto', kubernetesVersion });
    expect(names(r.pod, 'initContainers').includes('aigress-proxy')).toBe(native);
  });

  it('feeds the effective capture settings to aigress-init: config defaults ∪ annotations', () => {
    const c: InjectionConfig = {
      ...config,
      capture: { ...config.capture, excludeOutboundPorts: [{ from: 22, to: 22 }], excludeOutboundCidrs: ['169.254.169.254/32'] },
    };
    const r = inject(
      pod({}, { annotations: { 'aigress.io/include-outbound-ports': '8443', 'aigress.io/exclude-outbound-cidrs': '10.0.0.0/8' } }),
      ctx,
      c,
    );
    expect(r.pod!.spec.initContainers![0]!.args).toEqual([
      'init',
      '--proxy-uid', '1500',
      '--proxy-gid', '1500',
      '--capture-port', '14001',
      '--include-outbound-ports', '80,443,8443',
      '--exclude-outbound-ports', '22',
      '--exclude-outbound-cidrs', '169.254.169.254/32,10.0.0.0/8',
      '--ipv6', 'auto',
      '--iptables-mode', 'auto',
    ]);
  });

  it('omits --control-plane when the config sets no address and appends extraArgs verbatim', () => {
    const c: InjectionConfig = { ...config, controlPlane: { ...config.controlPlane, address: '' }, proxy: { ...config.proxy, extraArgs: ['--policy', '/p.yaml'] } };
    const args = inject(pod(), ctx, c).pod!.spec.initContainers![1]!.args as string[];
    expect(args).not.toContain('--control-plane');
    expect(args.slice(-2)).toEqual(['--policy', '/p.yaml']);
  });

  it('gives the proxy --redis-url and, only when a Secret is named, the Redis password from it (docs/budgets.md)', () => {
    const proxyOf = (c: InjectionConfig) => inject(pod(), ctx, c).pod!.spec.initContainers![1]!;
    expect(proxyOf(config).args).not.toContain('--redis-url');
    const url = { ...config, budgets: { ...config.budgets, redisUrl: 'rediss://redis.infra:6380' } };
    const a = proxyOf(url);
    expect((a.args as string[]).slice(-2)).toEqual(['--redis-url', 'rediss://redis.infra:6380']);
    expect(JSON.stringify(a)).not.toMatch(/secretKeyRef/);
    const withSecret = proxyOf({ ...url, budgets: { ...url.budgets, passwordSecret: { name: 'aigress-redis', key: 'password' } } });
    expect(withSecret.env?.find((e) => e.name === 'AIGRESS_REDIS_PASSWORD')).toEqual({ name: 'AIGRESS_REDIS_PASSWORD', valueFrom: { secretKeyRef: { name: 'aigress-redis', key: 'password' } } });
  });

  it('raises a configured limit to an annotation\'s larger request, and leaves a larger limit alone', () => {
    const c: InjectionConfig = { ...config, proxy: { ...config.proxy, resources: { requests: { cpu: '100m' }, limits: { cpu: '1', memory: '512Mi' } } } };
    const res = (annotations: Record<string, string>): unknown => inject(pod({}, { annotations }), ctx, c).pod!.spec.initContainers![1]!.resources;
    expect(res({ 'aigress.io/proxy-cpu': '2', 'aigress.io/proxy-memory': '256Mi' })).toEqual({
      requests: { cpu: '2', memory: '256Mi' },
      limits: { cpu: '2', memory: '512Mi' },
    });
  });

  it('never gives the proxy a secret: its only volumes are the CA bundle dir and the projected token', () => {
    const proxy = inject(pod(), ctx, config).pod!.spec.initContainers![1]!;
    expect((proxy.volumeMounts ?? []).map((m) => m.name)).toEqual(['aigress-ca', 'aigress-token']);
    expect(JSON.stringify(proxy)).not.toMatch(/secretKeyRef|secretRef|secret:/);
  });
});
