// What kube-apiserver decides before it calls a mutating webhook, written from the Kubernetes reference
// ("Dynamic Admission Control": matching requests by rules, namespaceSelector, objectSelector; LabelSelector
// semantics from apimachinery's labels package). Pure, so it has its own unit tests.

export interface LabelSelectorRequirement {
  key: string;
  operator: string;
  values?: string[];
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelSelectorRequirement[];
}

export type Labels = Record<string, string>;

/** LabelSelector semantics: every matchLabels pair and every requirement must hold; an empty selector selects all. */
export function selects(selector: LabelSelector | undefined, labels: Labels): boolean {
  if (!selector) return true;
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const r of selector.matchExpressions ?? []) {
    const has = Object.prototype.hasOwnProperty.call(labels, r.key);
    const values = r.values ?? [];
    switch (r.operator) {
      case 'In':
        if (values.length === 0) throw new Error(`selector ${r.key} In: values must be non-empty`);
        if (!has || !values.includes(labels[r.key]!)) return false;
        break;
      case 'NotIn':
        if (values.length === 0) throw new Error(`selector ${r.key} NotIn: values must be non-empty`);
        // an absent key satisfies NotIn
        if (has && values.includes(labels[r.key]!)) return false;
        break;
      case 'Exists':
        if (values.length > 0) throw new Error(`selector ${r.key} Exists: values must be empty`);
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (values.length > 0) throw new Error(`selector ${r.key} DoesNotExist: values must be empty`);
        if (has) return false;
        break;
      default:
        throw new Error(`selector ${r.key}: unknown operator ${r.operator}`);
    }
  }
  return true;
}

export interface RuleWithOperations {
  operations?: string[];
  apiGroups?: string[];
  apiVersions?: string[];
  resources?: string[];
  scope?: string;
}

export interface AdmissionAttributes {
  operation: 'CREATE' | 'UPDATE' | 'DELETE' | 'CONNECT';
  group: string;
  version: string;
  resource: string;
  subresource?: string;
  namespaced: boolean;
}

const anyOf = (list: string[] | undefined, v: string): boolean => (list ?? []).some((x) => x === '*' || x === v);

/** One webhook rule against a request (resources: `pods`, `pods/status`, `pods/*`, `*`, `*\/*`). */
export function ruleMatches(rule: RuleWithOperations, a: AdmissionAttributes): boolean {
  if (!anyOf(rule.operations, a.operation) || !anyOf(rule.apiGroups, a.group) || !anyOf(rule.apiVersions, a.version)) return false;
  const scope = rule.scope ?? '*';
  if (scope === 'Namespaced' && !a.namespaced) return false;
  if (scope === 'Cluster' && a.namespaced) return false;
  return (rule.resources ?? []).some((r) => {
    const [res, sub] = r.split('/') as [string, string | undefined];
    if (a.subresource === undefined) return sub === undefined && (res === '*' || res === a.resource);
    return (res === '*' || res === a.resource) && (sub === '*' || sub === a.subresource);
  });
}

export interface WebhookMatchFields {
  rules?: RuleWithOperations[];
  namespaceSelector?: LabelSelector;
  objectSelector?: LabelSelector;
}

/**
 * Whether the API server sends this request to the webhook. The namespace's labels include
 * `kubernetes.io/metadata.name`, which the API server sets on every namespace (1.21+) whatever the user gives.
 */
export function webhookCalled(
  w: WebhookMatchFields,
  a: AdmissionAttributes,
  ns: { name: string; labels?: Labels },
  objectLabels: Labels,
): boolean {
  if (!(w.rules ?? []).some((r) => ruleMatches(r, a))) return false;
  if (a.namespaced && !selects(w.namespaceSelector, { ...ns.labels, 'kubernetes.io/metadata.name': ns.name })) return false;
  return selects(w.objectSelector, objectLabels);
}
