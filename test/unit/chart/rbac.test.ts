import { describe, expect, it } from 'vitest';
import { authorize, requestAttributes, ruleAllows } from './rbac.js';
import { find, NAMESPACE, render, type K8sObject } from './render.js';

// The chart's RBAC is least privilege: the exact rule set (asserted whole, so any addition fails), no wildcards,
// Secrets only in the release namespace (the CA's by name where Kubernetes allows it; list/watch there for managed
// credentials), the webhook
// configuration by name. admission.test.ts checks the other direction: every request the running control plane
// makes is allowed by these rules, and every rule is used.

const SA = { namespace: NAMESPACE, name: 'aigress' };
const rulesOf = (objects: K8sObject[], kind: string): unknown => find(objects, kind, 'aigress').rules;

describe('chart RBAC', () => {
  it('grants exactly what the control plane calls, cluster-wide', () => {
    const objects = render();
    expect(rulesOf(objects, 'ClusterRole')).toEqual([
      { apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'], verbs: ['create'] },
      { apiGroups: [''], resources: ['namespaces'], verbs: ['list', 'watch'] },
      { apiGroups: ['aigress.io'], resources: ['egresspolicies'], verbs: ['list', 'watch'] },
      { apiGroups: ['aigress.io'], resources: ['egresspolicies/status'], verbs: ['update'] },
      { apiGroups: ['aigress.io'], resources: ['clusteregresspolicies'], verbs: ['list', 'watch'] },
      { apiGroups: ['aigress.io'], resources: ['clusteregresspolicies/status'], verbs: ['update'] },
      { apiGroups: ['admissionregistration.k8s.io'], resources: ['mutatingwebhookconfigurations'], resourceNames: ['aigress'], verbs: ['get', 'patch'] },
    ]);
    expect(find(objects, 'ClusterRoleBinding').subjects).toEqual([{ kind: 'ServiceAccount', ...SA }]);
    expect(find(objects, 'ClusterRoleBinding').roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'aigress' });
  });

  it('grants Secrets in the release namespace only: read of the CA Secret by name, create while bootstrapping, list/watch for managed credentials', () => {
    const objects = render();
    const role = find(objects, 'Role');
    expect(role.metadata.namespace).toBe(NAMESPACE);
    const credentials = { apiGroups: [''], resources: ['secrets'], verbs: ['list', 'watch'] };
    expect(role.rules).toEqual([
      { apiGroups: [''], resources: ['secrets'], resourceNames: ['aigress-ca'], verbs: ['get'] },
      // create cannot be limited by name (the object does not exist when it is authorized)
      { apiGroups: [''], resources: ['secrets'], verbs: ['create'] },
      credentials,
    ]);
    expect(find(objects, 'RoleBinding').metadata.namespace).toBe(NAMESPACE);
    expect(find(objects, 'RoleBinding').roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'aigress' });
    // ca.bootstrap: false drops create; the read follows the Secret's name
    expect(rulesOf(render({ ca: { secretName: 'corp-ca', bootstrap: false } }), 'Role')).toEqual([
      { apiGroups: [''], resources: ['secrets'], resourceNames: ['corp-ca'], verbs: ['get'] },
      credentials,
    ]);
    // cert-manager: the CA is mounted; only the credentials' list/watch is left
    expect(rulesOf(render({ certManager: { enabled: true } }), 'Role')).toEqual([credentials]);
  });

  it('has no wildcard anywhere, in any value combination', () => {
    for (const values of [undefined, { certManager: { enabled: true } }, { ca: { secretName: 'x', bootstrap: false } }]) {
      for (const o of render(values).filter((x) => x.kind === 'ClusterRole' || x.kind === 'Role')) {
        expect(JSON.stringify(o.rules)).not.toContain('*');
      }
    }
  });

  it('denies what a least-privilege control plane must not do', () => {
    const objects = render();
    const may = (method: string, path: string, query = ''): boolean => authorize(objects, SA, requestAttributes(method, path, query));
    // what it needs
    expect(may('GET', `/api/v1/namespaces/${NAMESPACE}/secrets/aigress-ca`)).toBe(true);
    expect(may('POST', `/api/v1/namespaces/${NAMESPACE}/secrets`)).toBe(true);
    expect(may('PATCH', '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/aigress')).toBe(true);
    expect(may('GET', '/api/v1/namespaces', '?watch=true')).toBe(true);
    // managed credentials: list and watch of the release namespace's Secrets
    expect(may('GET', `/api/v1/namespaces/${NAMESPACE}/secrets`)).toBe(true);
    expect(may('GET', `/api/v1/namespaces/${NAMESPACE}/secrets`, '?watch=true')).toBe(true);
    // and what it must not: Secrets of any other namespace (by name, list or watch, or cluster-wide), Secret
    // writes but the CA's bootstrap, other webhooks, writes
    expect(may('GET', `/api/v1/namespaces/${NAMESPACE}/secrets/other`)).toBe(false);
    expect(may('GET', '/api/v1/namespaces/team-a/secrets/aigress-ca')).toBe(false);
    expect(may('GET', '/api/v1/namespaces/team-a/secrets')).toBe(false);
    expect(may('GET', '/api/v1/namespaces/team-a/secrets', '?watch=true')).toBe(false);
    expect(may('GET', '/api/v1/secrets')).toBe(false);
    expect(may('GET', '/api/v1/secrets', '?watch=true')).toBe(false);
    expect(may('POST', '/api/v1/namespaces/team-a/secrets')).toBe(false);
    expect(may('PUT', `/api/v1/namespaces/${NAMESPACE}/secrets/aigress-ca`)).toBe(false);
    expect(may('PATCH', `/api/v1/namespaces/${NAMESPACE}/secrets/openai-key`)).toBe(false);
    expect(may('DELETE', `/api/v1/namespaces/${NAMESPACE}/secrets/openai-key`)).toBe(false);
    expect(may('PATCH', '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/istio-sidecar-injector')).toBe(false);
    expect(may('GET', '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations')).toBe(false);
    expect(may('PUT', '/apis/aigress.io/v1alpha1/namespaces/team-a/egresspolicies/p')).toBe(false);
    expect(may('PUT', '/apis/aigress.io/v1alpha1/namespaces/team-a/egresspolicies/p/status')).toBe(true);
    expect(may('GET', '/api/v1/namespaces/team-a/pods')).toBe(false);
    expect(may('PATCH', '/api/v1/namespaces/team-a')).toBe(false);
    // cert-manager mode: no Secret read by name at all, no Secret anywhere else
    const cm = render({ certManager: { enabled: true } });
    expect(authorize(cm, SA, requestAttributes('GET', `/api/v1/namespaces/${NAMESPACE}/secrets/aigress-ca`, ''))).toBe(false);
    expect(authorize(cm, SA, requestAttributes('GET', '/api/v1/namespaces/team-a/secrets', ''))).toBe(false);
  });
});

describe('the RBAC model the tests use', () => {
  it('derives request attributes as kube-apiserver does', () => {
    expect(requestAttributes('GET', '/api/v1/namespaces/ns/secrets/s', '')).toEqual({ verb: 'get', apiGroup: '', resource: 'secrets', namespace: 'ns', name: 's' });
    expect(requestAttributes('GET', '/api/v1/namespaces', '?watch=true&resourceVersion=5')).toEqual({ verb: 'watch', apiGroup: '', resource: 'namespaces' });
    expect(requestAttributes('GET', '/api/v1/namespaces', '?resourceVersion=5')).toEqual({ verb: 'list', apiGroup: '', resource: 'namespaces' });
    expect(requestAttributes('GET', '/api/v1/namespaces/team-a', '')).toEqual({ verb: 'get', apiGroup: '', resource: 'namespaces', namespace: 'team-a', name: 'team-a' });
    expect(requestAttributes('PUT', '/apis/aigress.io/v1alpha1/namespaces/a/egresspolicies/p/status', '')).toEqual({
      verb: 'update', apiGroup: 'aigress.io', resource: 'egresspolicies', subresource: 'status', namespace: 'a', name: 'p',
    });
    expect(requestAttributes('POST', '/apis/authentication.k8s.io/v1/tokenreviews', '')).toEqual({ verb: 'create', apiGroup: 'authentication.k8s.io', resource: 'tokenreviews' });
    expect(requestAttributes('DELETE', '/api/v1/namespaces/a/secrets', '').verb).toBe('deletecollection');
  });

  it('matches rules: subresources apart, resourceNames only for named requests', () => {
    const named = { apiGroups: [''], resources: ['secrets'], resourceNames: ['x'], verbs: ['get', 'create'] };
    expect(ruleAllows(named, { verb: 'get', apiGroup: '', resource: 'secrets', name: 'x' })).toBe(true);
    expect(ruleAllows(named, { verb: 'create', apiGroup: '', resource: 'secrets' })).toBe(false);
    const main = { apiGroups: ['aigress.io'], resources: ['egresspolicies'], verbs: ['update'] };
    expect(ruleAllows(main, { verb: 'update', apiGroup: 'aigress.io', resource: 'egresspolicies', subresource: 'status', name: 'p' })).toBe(false);
    expect(ruleAllows({ apiGroups: ['*'], resources: ['*'], verbs: ['*'] }, { verb: 'delete', apiGroup: 'x', resource: 'y', name: 'z' })).toBe(true);
  });

  it('lets a RoleBinding grant only in its own namespace, even to a ClusterRole', () => {
    const objects = [
      { kind: 'ClusterRole', metadata: { name: 'read' }, rules: [{ apiGroups: [''], resources: ['secrets'], verbs: ['get'] }] },
      { kind: 'RoleBinding', metadata: { name: 'b', namespace: 'a' }, roleRef: { kind: 'ClusterRole', name: 'read' }, subjects: [{ kind: 'ServiceAccount', name: 'sa', namespace: 'x' }] },
    ];
    const attrs = (ns: string): ReturnType<typeof requestAttributes> => requestAttributes('GET', `/api/v1/namespaces/${ns}/secrets/s`, '');
    expect(authorize(objects, { namespace: 'x', name: 'sa' }, attrs('a'))).toBe(true);
    expect(authorize(objects, { namespace: 'x', name: 'sa' }, attrs('b'))).toBe(false);
    expect(authorize(objects, { namespace: 'y', name: 'sa' }, attrs('a'))).toBe(false);
  });
});
