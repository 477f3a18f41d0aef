import { describe, expect, it } from 'vitest';
import { restrictedViolations } from './pod-security.js';
import { ruleMatches, selects, webhookCalled } from './selectors.js';

// The harness's stand-ins for API server logic are code too: they get their own tests, including the cases where
// they must say no, so a passing harness cannot come from a matcher that says yes to everything.

describe('label selectors', () => {
  it('matchLabels and every operator', () => {
    expect(selects(undefined, {})).toBe(true);
    expect(selects({}, { a: '1' })).toBe(true);
    expect(selects({ matchLabels: { a: '1' } }, { a: '1', b: '2' })).toBe(true);
    expect(selects({ matchLabels: { a: '1' } }, { a: '2' })).toBe(false);
    expect(selects({ matchLabels: { a: '1' } }, {})).toBe(false);
    expect(selects({ matchExpressions: [{ key: 'a', operator: 'In', values: ['1', '2'] }] }, { a: '2' })).toBe(true);
    expect(selects({ matchExpressions: [{ key: 'a', operator: 'In', values: ['1'] }] }, {})).toBe(false);
    expect(selects({ matchExpressions: [{ key: 'a', operator: 'NotIn', values: ['x'] }] }, {})).toBe(true); // absent key
    expect(selects({ matchExpressions: [{ key: 'a', operator: 'NotIn', values: ['x'] }] }, { a: 'x' })).toBe(false);
    expect(selects({ matchExpressions: [{ key: 'a', operator: 'Exists' }] }, { a: '' })).toBe(true);
    expect(selects({ matchExpressions: [{ key: 'a', operator: 'DoesNotExist' }] }, { a: '' })).toBe(false);
    // labels and expressions are ANDed
    expect(selects({ matchLabels: { a: '1' }, matchExpressions: [{ key: 'b', operator: 'Exists' }] }, { a: '1' })).toBe(false);
    expect(() => selects({ matchExpressions: [{ key: 'a', operator: 'Like', values: ['x'] }] }, {})).toThrow(/unknown operator/);
  });

  it('webhook rules: operation, group, version, resource, subresource, scope', () => {
    const rule = { operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'], scope: 'Namespaced' };
    const pod = { operation: 'CREATE', group: '', version: 'v1', resource: 'pods', namespaced: true } as const;
    expect(ruleMatches(rule, pod)).toBe(true);
    expect(ruleMatches(rule, { ...pod, operation: 'UPDATE' })).toBe(false);
    expect(ruleMatches(rule, { ...pod, subresource: 'ephemeralcontainers' })).toBe(false);
    expect(ruleMatches(rule, { ...pod, resource: 'services' })).toBe(false);
    expect(ruleMatches(rule, { ...pod, group: 'apps' })).toBe(false);
    expect(ruleMatches({ ...rule, resources: ['pods/*'] }, { ...pod, subresource: 'status' })).toBe(true);
    expect(ruleMatches({ ...rule, scope: 'Cluster' }, pod)).toBe(false);
  });

  it('the namespace is matched by its labels plus the kubernetes.io/metadata.name the API server sets', () => {
    const w = {
      rules: [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'] }],
      namespaceSelector: { matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['kube-system'] }] },
    };
    const a = { operation: 'CREATE', group: '', version: 'v1', resource: 'pods', namespaced: true } as const;
    expect(webhookCalled(w, a, { name: 'team-a' }, {})).toBe(true);
    expect(webhookCalled(w, a, { name: 'kube-system', labels: { 'kubernetes.io/metadata.name': 'forged' } }, {})).toBe(false);
  });
});

describe('Pod Security `restricted`', () => {
  const good = {
    securityContext: { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } },
    containers: [{ name: 'c', securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } } }],
    volumes: [{ name: 'v', configMap: { name: 'x' } }],
  };

  it('admits a compliant pod', () => {
    expect(restrictedViolations(good)).toEqual([]);
  });

  it('names each violation', () => {
    const bad = structuredClone(good) as Record<string, unknown> & typeof good;
    bad.securityContext = { runAsNonRoot: false, seccompProfile: { type: 'Unconfined' } };
    bad.volumes = [{ name: 'h', hostPath: { path: '/' } } as never];
    (bad as Record<string, unknown>).hostNetwork = true;
    bad.containers = [{ name: 'c', securityContext: { capabilities: { add: ['NET_ADMIN'] }, privileged: true, runAsUser: 0 } as never }];
    expect(restrictedViolations(bad)).toEqual([
      'hostNetwork: true',
      'volume h: type hostPath not allowed',
      'pod seccompProfile Unconfined',
      'container c: privileged',
      'container c: allowPrivilegeEscalation must be false',
      'container c: capabilities must drop ALL',
      'container c: adds capability NET_ADMIN',
      'container c: runAsNonRoot must be true',
      'container c: runAsUser 0',
      'container c: seccompProfile must be RuntimeDefault or Localhost',
    ]);
  });
});
