import { PersistentVolumeClaim } from 'kubernetes-models/v1';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../webhook/config.js';
import { restrictedViolations } from './pod-security.js';
import { find, lint, NAMESPACE, render, validateObject, type K8sObject } from './render.js';

// `helm template` / `helm lint` with the real helm binary: the Redis the chart can install for shared budgets
// (redis.enabled, off by default) and how the injected proxies are pointed at it (docs/budgets.md).

type Obj = Record<string, unknown>;
interface RedisContainer {
  image: string;
  command: string[];
  args: string[];
  env?: Array<{ name: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } }>;
  ports: Array<{ name: string; containerPort: number }>;
  securityContext: Obj;
  volumeMounts: Array<{ name: string; mountPath: string }>;
}
interface RedisPod {
  containers: RedisContainer[];
  volumes: Array<{ name: string; emptyDir?: Obj; persistentVolumeClaim?: { claimName: string } }>;
}

const redisObjects = (objects: readonly K8sObject[]) => objects.filter((o) => o.metadata.name === 'aigress-redis');
const podOf = (objects: readonly K8sObject[]) => (find(objects, 'Deployment', 'aigress-redis') as unknown as { spec: { template: { metadata: { labels: Record<string, string> }; spec: RedisPod } } }).spec.template;
const arg = (c: RedisContainer, name: string): string | undefined => {
  const i = c.args.indexOf(name);
  return i < 0 ? undefined : c.args[i + 1];
};
/** The injection config the control plane reads (the ConfigMap's one data key). */
function injectionBudgets(objects: readonly K8sObject[]): { redisUrl: string; passwordSecret: { name: string; key: string } } {
  const cm = objects.find((o) => o.kind === 'ConfigMap' && Object.values((o as unknown as { data?: Record<string, string> }).data ?? {}).some((v) => v.startsWith('injection:')))!;
  const text = Object.values((cm as unknown as { data: Record<string, string> }).data).find((v) => v.startsWith('injection:'))!;
  return parseConfig(text, 'config.yaml').injection.budgets;
}

describe('helm template: the chart\'s own Redis for shared budgets', () => {
  it('is off by default: no Redis objects, and proxies get no Redis address', () => {
    const objects = render();
    expect(redisObjects(objects)).toEqual([]);
    expect(injectionBudgets(objects).redisUrl).toBe('');
  });

  it('when enabled: a Service and a one-replica Deployment with append-only persistence, and the proxies pointed at it', () => {
    const objects = render({ redis: { enabled: true } });
    for (const o of redisObjects(objects)) {
      expect(() => validateObject(o), `${o.kind}`).not.toThrow();
      expect(o.metadata.namespace).toBe(NAMESPACE);
      expect(o.metadata.labels?.['app.kubernetes.io/component']).toBe('budget-store');
    }
    expect(redisObjects(objects).map((o) => o.kind).sort()).toEqual(['Deployment', 'Service']);
    const svc = find(objects, 'Service', 'aigress-redis') as unknown as { spec: { selector: Record<string, string>; ports: Array<{ port: number; targetPort: string }> } };
    const d = find(objects, 'Deployment', 'aigress-redis') as unknown as { spec: { replicas: number; strategy: { type: string }; selector: { matchLabels: Record<string, string> } } };
    expect(d.spec.replicas).toBe(1);
    expect(d.spec.strategy.type).toBe('Recreate');
    const pod = podOf(objects);
    // the Service reaches exactly this pod, and not the control plane's
    expect(svc.spec.selector).toEqual(d.spec.selector.matchLabels);
    for (const [k, v] of Object.entries(svc.spec.selector)) expect(pod.metadata.labels[k]).toBe(v);
    expect(svc.spec.selector['app.kubernetes.io/component']).toBe('budget-store');
    expect(svc.spec.ports).toEqual([expect.objectContaining({ port: 6379, targetPort: 'redis' })]);
    expect(pod.metadata.labels['aigress.io/inject']).toBe('disabled');
    expect(restrictedViolations(pod.spec as unknown as Obj)).toEqual([]);
    const c = pod.spec.containers[0]!;
    expect(c.image).toBe('docker.io/library/redis:7.4.2-alpine');
    expect(c.command).toEqual(['redis-server']);
    expect(arg(c, '--appendonly')).toBe('yes');
    expect(arg(c, '--dir')).toBe('/data');
    expect(arg(c, '--maxmemory-policy')).toBe('noeviction');
    expect(arg(c, '--requirepass')).toBeUndefined();
    expect(c.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false });
    expect(c.volumeMounts).toEqual([{ name: 'data', mountPath: '/data' }]);
    expect(pod.spec.volumes).toEqual([{ name: 'data', emptyDir: {} }]);
    expect(injectionBudgets(objects).redisUrl).toBe(`redis://aigress-redis.${NAMESPACE}.svc:6379`);
  });

  it('with a password Secret, a claim and a NetworkPolicy', () => {
    const objects = render({
      redis: { enabled: true, passwordSecret: { name: 'aigress-redis-auth', key: 'pw' }, persistence: { enabled: true, size: '2Gi', storageClassName: 'fast' }, image: { digest: `sha256:${'a'.repeat(64)}` } },
      injection: { budgets: { passwordSecret: { name: 'aigress-redis-auth', key: 'pw' } } },
      networkPolicy: { enabled: true },
    });
    const c = podOf(objects).spec.containers[0]!;
    expect(c.image).toBe(`docker.io/library/redis@sha256:${'a'.repeat(64)}`);
    // the password is read from the Secret into the environment; the argument only names the variable
    expect(arg(c, '--requirepass')).toBe('$(REDIS_PASSWORD)');
    expect(c.env).toEqual([{ name: 'REDIS_PASSWORD', valueFrom: { secretKeyRef: { name: 'aigress-redis-auth', key: 'pw' } } }]);
    expect(c.args).not.toContain('--protected-mode');
    expect(podOf(objects).spec.volumes).toEqual([{ name: 'data', persistentVolumeClaim: { claimName: 'aigress-redis' } }]);
    const pvc = find(objects, 'PersistentVolumeClaim', 'aigress-redis');
    expect(() => new PersistentVolumeClaim(pvc as never).validate()).not.toThrow();
    expect(pvc).toMatchObject({ spec: { accessModes: ['ReadWriteOnce'], storageClassName: 'fast', resources: { requests: { storage: '2Gi' } } } });
    const np = find(objects, 'NetworkPolicy', 'aigress-redis') as unknown as { spec: { podSelector: { matchLabels: Record<string, string> }; ingress: Array<{ ports: Array<{ port: number }> }>; egress: unknown[] } };
    expect(() => validateObject(np as unknown as K8sObject)).not.toThrow();
    expect(np.spec.podSelector.matchLabels['app.kubernetes.io/component']).toBe('budget-store');
    expect(np.spec.ingress).toEqual([{ ports: [{ port: 6379, protocol: 'TCP' }] }]);
    expect(np.spec.egress).toEqual([]);
    expect(injectionBudgets(objects)).toEqual({ redisUrl: `redis://aigress-redis.${NAMESPACE}.svc:6379`, passwordSecret: { name: 'aigress-redis-auth', key: 'pw' } });
  });

  it('an existing Redis named in injection.budgets.redisUrl wins over the chart\'s', () => {
    const objects = render({ redis: { enabled: true }, injection: { budgets: { redisUrl: 'rediss://redis.infra:6380' } } });
    expect(injectionBudgets(objects).redisUrl).toBe('rediss://redis.infra:6380');
  });

  it('lint --strict passes, and the schema names the field of a mistake', () => {
    expect(lint({ redis: { enabled: true, persistence: { enabled: true } } }).code).toBe(0);
    const bad = lint({ redis: { enabled: true, maxmemory: 'lots' } });
    expect(bad.code).not.toBe(0);
    expect(bad.stdout + bad.stderr).toMatch(/redis.*maxmemory/);
    const unknown = lint({ redis: { replicas: 3 } });
    expect(unknown.code).not.toBe(0);
    expect(unknown.stdout + unknown.stderr).toMatch(/replicas/);
  });
});
