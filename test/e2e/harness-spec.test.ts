import { describe, expect, it } from 'vitest';
import { metricSum } from './support/metrics.js';
import { hostsFileText } from './support/netns.js';
import {
  containerArgv,
  containerEnv,
  containerIdentity,
  containerMounts,
  containerScript,
  expand,
  quantity,
  type Container,
  type Pod,
  type PodRuntime,
} from './support/pod-spec.js';

// The harness's pure parts: how it reads a pod spec (env, argv, identity, mounts) and what script it runs for a
// container. No root needed; a mistake here would make the e2e suite play a different pod than the spec says.

const rt: PodRuntime = { podIP: '10.200.0.2', hostIP: '10.200.0.1', nodeName: 'node-1', uid: 'uid-1' };

const proxy: Container = {
  name: 'aigress-proxy',
  command: ['aigress'],
  args: ['proxy', '--admin-port', '$(ADMIN)', '--literal', '$$(ADMIN)'],
  env: [
    { name: 'AIGRESS_POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
    { name: 'AIGRESS_POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
    { name: 'APP_LABEL', valueFrom: { fieldRef: { fieldPath: "metadata.labels['app']" } } },
    { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
    { name: 'MEM_MI', valueFrom: { resourceFieldRef: { resource: 'limits.memory', divisor: '1Mi' } } },
    { name: 'CPU', valueFrom: { resourceFieldRef: { resource: 'limits.cpu' } } },
    { name: 'ADMIN', value: '14020' },
    { name: 'URL', value: 'http://$(POD_IP):$(ADMIN)/$(UNKNOWN)' },
  ],
  resources: { limits: { memory: '512Mi' } },
  securityContext: { runAsUser: 1500, runAsGroup: 1500, runAsNonRoot: true, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
  volumeMounts: [
    { name: 'aigress-ca', mountPath: '/var/run/aigress/ca' },
    { name: 'aigress-token', mountPath: '/var/run/secrets/aigress.io', readOnly: true },
  ],
};

const init: Container = {
  name: 'aigress-init',
  command: ['aigress'],
  args: ['init'],
  securityContext: { runAsUser: 0, capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] } },
  volumeMounts: [{ name: 'init-run', mountPath: '/run' }],
};

const pod: Pod = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'web-1', namespace: 'team-a', labels: { app: 'web' } },
  spec: {
    containers: [{ name: 'app', command: ['sleep'] }],
    initContainers: [init, proxy],
    volumes: [
      { name: 'aigress-ca', emptyDir: {} },
      { name: 'aigress-token', projected: { sources: [{ serviceAccountToken: { path: 'token', audience: 'aigress' } }] } },
      { name: 'init-run', emptyDir: { medium: 'Memory' } },
    ],
  },
};

describe('e2e harness: reading a pod spec', () => {
  it('expands $(VAR) like Kubernetes: known names, $$ escapes, unknown references kept', () => {
    expect(expand('a$(X)b$$(X)c$(Y)', { X: '1' })).toBe('a1b$(X)c$(Y)');
  });

  it('builds the environment from image env, values, the downward API and resource limits', () => {
    const env = containerEnv(pod, proxy, rt, { PATH: '/usr/bin', ADMIN: 'from-image' });
    expect(env).toEqual({
      PATH: '/usr/bin',
      AIGRESS_POD_NAME: 'web-1',
      AIGRESS_POD_NAMESPACE: 'team-a',
      APP_LABEL: 'web',
      POD_IP: '10.200.0.2',
      MEM_MI: '512',
      CPU: '2', // no CPU limit: the node's allocatable, as the kubelet reports it
      ADMIN: '14020',
      URL: 'http://10.200.0.2:14020/$(UNKNOWN)',
    });
  });

  it('refuses what it cannot play instead of guessing', () => {
    const secret: Container = { name: 'x', env: [{ name: 'K', valueFrom: { secretKeyRef: { name: 's', key: 'k' } } }] };
    expect(() => containerEnv(pod, secret, rt)).toThrow(/env K uses a valueFrom/);
    const badField: Container = { name: 'x', env: [{ name: 'K', valueFrom: { fieldRef: { fieldPath: 'spec.nope' } } }] };
    expect(() => containerEnv(pod, badField, rt)).toThrow(/spec\.nope/);
    expect(() => quantity('12 apples')).toThrow(/not a resource quantity/);
  });

  it('maps the command through the image entrypoint and expands args', () => {
    const argv = containerArgv(proxy, { ADMIN: '14020' }, { aigress: ['/usr/bin/node', '/repo/bin/aigress.js'] });
    expect(argv).toEqual(['/usr/bin/node', '/repo/bin/aigress.js', 'proxy', '--admin-port', '14020', '--literal', '$(ADMIN)']);
  });

  it('derives user and capabilities from the securityContext', () => {
    expect(containerIdentity(pod, init)).toEqual({ uid: 0, gid: 0, caps: ['net_admin', 'net_raw'], noNewPrivs: false, readOnlyRoot: false });
    expect(containerIdentity(pod, proxy)).toEqual({ uid: 1500, gid: 1500, caps: [], noNewPrivs: true, readOnlyRoot: true });
    const rootButNonRoot: Container = { name: 'r', securityContext: { runAsNonRoot: true } };
    expect(() => containerIdentity(pod, rootButNonRoot)).toThrow(/runAsNonRoot/);
  });

  it('resolves volume mounts to the pod volume directories', () => {
    const mounts = containerMounts(pod, proxy, (v) => `/tmp/vols/${v.name}`);
    expect(mounts).toEqual([
      { source: '/tmp/vols/aigress-ca', target: '/var/run/aigress/ca', readOnly: false },
      { source: '/tmp/vols/aigress-token', target: '/var/run/secrets/aigress.io', readOnly: true },
    ]);
    expect(() => containerMounts(pod, { name: 'x', volumeMounts: [{ name: 'nope', mountPath: '/x' }] }, () => '')).toThrow(/names no volume/);
  });
});

describe('e2e harness: the script that starts a container', () => {
  const exists = (p: string): boolean => ['/', '/run', '/var', '/var/run', '/tmp'].includes(p);
  const realpath = (p: string): string => p.replace(/^\/var\/run(\/|$)/, '/run$1');

  it('proxy: private /run for missing mount points, binds, read-only root, then its UID with exactly its env', () => {
    const script = containerScript({
      mounts: containerMounts(pod, proxy, (v) => `/tmp/vols/${v.name}`),
      identity: containerIdentity(pod, proxy),
      env: { PATH: '/usr/bin', A: "it's" },
      argv: ['/usr/bin/node', '/repo/bin/aigress.js', 'proxy'],
      cwd: '/',
      exists,
      realpath,
    });
    expect(script.split('\n')).toEqual([
      'set -e',
      'mount -t tmpfs -o mode=0755,size=16m aigress-e2e-run /run',
      'mkdir -p /var/run/aigress/ca',
      'mount --bind /tmp/vols/aigress-ca /var/run/aigress/ca',
      'mkdir -p /var/run/secrets/aigress.io',
      'mount --bind /tmp/vols/aigress-token /var/run/secrets/aigress.io',
      'mount -o remount,bind,ro /var/run/secrets/aigress.io',
      'mount -o remount,bind,ro /',
      'mount -o remount,bind,ro /run',
      'cd /',
      "exec /usr/bin/setpriv --reuid=1500 --regid=1500 --clear-groups --no-new-privs -- /usr/bin/env -i PATH=/usr/bin 'A=it'\\''s' /usr/bin/node /repo/bin/aigress.js proxy",
      '',
    ]);
  });

  it('init: root limited to the granted capabilities; an existing mount point is bound directly', () => {
    const script = containerScript({
      mounts: containerMounts(pod, init, (v) => `/tmp/vols/${v.name}`),
      identity: containerIdentity(pod, init),
      env: {},
      argv: ['aigress', 'init'],
      cwd: '/',
      exists,
      realpath,
    });
    expect(script).not.toContain('tmpfs');
    expect(script).toContain('mount --bind /tmp/vols/init-run /run\n');
    expect(script).toContain('--reuid=0 --regid=0 --clear-groups --bounding-set=-all,+net_admin,+net_raw --inh-caps=-all -- /usr/bin/env -i aigress init');
  });

  it('will not create a missing mount point outside /run on the host', () => {
    expect(() =>
      containerScript({
        mounts: [{ source: '/tmp/v', target: '/opt/data', readOnly: false }],
        identity: { uid: 1000, gid: 1000, caps: [], noNewPrivs: false, readOnlyRoot: false },
        env: {},
        argv: ['true'],
        cwd: '/',
        exists,
        realpath,
      }),
    ).toThrow(/mountPath \/opt\/data does not exist on this host and is not under \/run/);
  });
});

describe('e2e harness: small readers', () => {
  it('hosts file maps every name to the outside address (and IPv6 when asked)', () => {
    expect(hostsFileText(['a.test', 'b.test'], '10.0.0.1', 'fd00::1').split('\n')).toEqual([
      '127.0.0.1 localhost',
      '::1 localhost ip6-localhost ip6-loopback',
      '10.0.0.1 a.test b.test',
      'fd00::1 a.test b.test',
      '',
    ]);
    expect(hostsFileText(['a.test'], '10.0.0.1', undefined)).not.toContain('fd00');
  });

  it('metricSum adds the samples whose labels include the given ones', () => {
    const text = [
      '# HELP x_total a counter',
      'x_total{route="a",code="200"} 2',
      'x_total{route="a",code="500"} 3',
      'x_total{route="b"} 7',
      'x_total_other{route="a"} 100',
      'y 1',
    ].join('\n');
    expect(metricSum(text, 'x_total', { route: 'a' })).toBe(5);
    expect(metricSum(text, 'x_total')).toBe(12);
    expect(metricSum(text, 'x_total', { route: 'c' })).toBe(0);
    expect(metricSum(text, 'y')).toBe(1);
  });
});
