/**
 * An `admission.k8s.io/v1` AdmissionReview for a Pod, shaped as kube-apiserver sends it. `overrides` replace
 * fields of `request` (uid, namespace, name, operation, dryRun, …).
 */
export interface PodAdmissionReview {
  apiVersion: string;
  kind: string;
  request: { uid: string } & Record<string, unknown>;
}

export function review(object: unknown, overrides: Record<string, unknown> = {}): PodAdmissionReview {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: '705ab4f5-6393-11e8-b7cc-42010a800002',
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      requestKind: { group: '', version: 'v1', kind: 'Pod' },
      requestResource: { group: '', version: 'v1', resource: 'pods' },
      namespace: 'team-a',
      operation: 'CREATE',
      userInfo: { username: 'system:serviceaccount:kube-system:replicaset-controller', groups: ['system:serviceaccounts'] },
      object,
      oldObject: null,
      dryRun: false,
      options: { apiVersion: 'meta.k8s.io/v1', kind: 'CreateOptions' },
      ...overrides,
    },
  };
}
