// Kubernetes RBAC, played by the test: the request attributes kube-apiserver derives from an HTTP request
// (RequestInfo: verb, API group, resource, subresource, namespace, name) and the RBAC authorizer's rule matching
// (bindings → roles → rules; resourceNames only match requests that carry a name). Pure, unit tested.

export interface PolicyRule {
  apiGroups?: string[];
  resources?: string[];
  verbs: string[];
  resourceNames?: string[];
  nonResourceURLs?: string[];
}

export interface RequestAttributes {
  verb: string;
  apiGroup: string;
  resource: string;
  subresource?: string;
  namespace?: string;
  name?: string;
}

/** `/api/v1/namespaces/ns/secrets/x` + method → attributes, as k8s.io/apiserver's RequestInfoFactory does. */
export function requestAttributes(method: string, path: string, query: string): RequestAttributes {
  const parts = path.split('/').filter(Boolean);
  let rest: string[];
  let apiGroup: string;
  if (parts[0] === 'api' && parts.length >= 2) {
    apiGroup = '';
    rest = parts.slice(2);
  } else if (parts[0] === 'apis' && parts.length >= 3) {
    apiGroup = parts[1]!;
    rest = parts.slice(3);
  } else throw new Error(`not a resource path: ${path}`);
  let legacyWatch = false;
  if (rest[0] === 'watch') {
    legacyWatch = true;
    rest = rest.slice(1);
  }
  let namespace: string | undefined;
  // As RequestInfoFactory: `namespaces/{ns}/{resource}…` is a namespaced request; `namespaces/{name}` and its
  // own subresources (status, finalize) address the Namespace, with the namespace attribute set to its name.
  if (rest[0] === 'namespaces' && rest.length >= 2) {
    namespace = rest[1];
    if (rest.length > 2 && !['status', 'finalize'].includes(rest[2]!)) rest = rest.slice(2);
  }
  const [resource, name, subresource] = rest;
  if (!resource) throw new Error(`no resource in ${path}`);
  const watch = legacyWatch || /(^|[?&])watch=(true|1)(&|$)/.test(query);
  const verbs: Record<string, string> = { POST: 'create', PUT: 'update', PATCH: 'patch', DELETE: name ? 'delete' : 'deletecollection' };
  const verb = method === 'GET' || method === 'HEAD' ? (watch ? 'watch' : name ? 'get' : 'list') : verbs[method];
  if (!verb) throw new Error(`no verb for ${method}`);
  return { verb, apiGroup, resource, ...(subresource ? { subresource } : {}), ...(namespace ? { namespace } : {}), ...(name ? { name } : {}) };
}

const has = (list: string[] | undefined, v: string): boolean => (list ?? []).some((x) => x === '*' || x === v);

export function ruleAllows(rule: PolicyRule, a: RequestAttributes): boolean {
  if (!has(rule.verbs, a.verb) || !has(rule.apiGroups, a.apiGroup)) return false;
  const combined = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
  const resourceOk = (rule.resources ?? []).some((r) => r === '*' || r === combined || (a.subresource !== undefined && r === `*/${a.subresource}`));
  if (!resourceOk) return false;
  if (rule.resourceNames && rule.resourceNames.length > 0) return a.name !== undefined && rule.resourceNames.includes(a.name);
  return true;
}

interface K8sObject {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string };
  rules?: PolicyRule[];
  roleRef?: { kind: string; name: string };
  subjects?: Array<{ kind: string; name: string; namespace?: string }>;
}

/** Whether the ServiceAccount may make the request, given every RBAC object rendered (RBAC only grants). */
export function authorize(objects: readonly K8sObject[], sa: { namespace: string; name: string }, a: RequestAttributes): boolean {
  const role = (kind: string, name: string, namespace?: string): K8sObject | undefined =>
    objects.find((o) => o.kind === kind && o.metadata?.name === name && (kind === 'ClusterRole' || o.metadata?.namespace === namespace));
  const boundToSa = (b: K8sObject, bindingNs?: string): boolean =>
    (b.subjects ?? []).some((s) => s.kind === 'ServiceAccount' && s.name === sa.name && (s.namespace ?? bindingNs) === sa.namespace);
  for (const b of objects) {
    if (b.kind === 'ClusterRoleBinding' && boundToSa(b)) {
      if (b.roleRef?.kind !== 'ClusterRole') continue;
      if ((role('ClusterRole', b.roleRef.name)?.rules ?? []).some((r) => ruleAllows(r, a))) return true;
    }
    if (b.kind === 'RoleBinding' && boundToSa(b, b.metadata?.namespace)) {
      // a RoleBinding grants only inside its own namespace, whatever role it points at
      if (a.namespace !== b.metadata?.namespace) continue;
      const r = b.roleRef ? role(b.roleRef.kind, b.roleRef.name, b.metadata?.namespace) : undefined;
      if ((r?.rules ?? []).some((x) => ruleAllows(x, a))) return true;
    }
  }
  return false;
}
