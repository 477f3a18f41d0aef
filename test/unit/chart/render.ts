import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MutatingWebhookConfiguration } from 'kubernetes-models/admissionregistration.k8s.io/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { ClusterRole, ClusterRoleBinding, Role, RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import { ConfigMap, Service, ServiceAccount } from 'kubernetes-models/v1';
import { parseAllDocuments } from 'yaml';
import { helm, type HelmResult } from '../../support/helm.js';

// `helm template` / `helm lint` of charts/aigress with the real helm binary, and what the rendered objects are.

export const CHART = 'charts/aigress';
export const NAMESPACE = 'aigress-system';

// One isolated helm home per test process (helm writes its cache and config there, never in $HOME).
const home = mkdtempSync(join(tmpdir(), 'aigress-helm-home-'));

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [k: string]: unknown;
}

function valuesArgs(values: unknown): string[] {
  if (values === undefined) return [];
  const file = join(mkdtempSync(join(home, 'values-')), 'values.json');
  writeFileSync(file, JSON.stringify(values)); // JSON is YAML: helm reads it with -f
  return ['-f', file];
}

export function template(values?: unknown, extra: string[] = []): HelmResult {
  return helm(['template', 'aigress', CHART, '--namespace', NAMESPACE, ...valuesArgs(values), ...extra], { home });
}

export function lint(values?: unknown): HelmResult {
  return helm(['lint', '--strict', CHART, '--namespace', NAMESPACE, ...valuesArgs(values)], { home });
}

/** Renders and parses; throws with helm's stderr when rendering fails. */
export function render(values?: unknown, extra: string[] = []): K8sObject[] {
  const r = template(values, extra);
  if (r.code !== 0) throw new Error(`helm template failed (${r.code}): ${r.stderr}`);
  return parseAllDocuments(r.stdout)
    .map((d) => {
      if (d.errors.length > 0) throw new Error(`rendered YAML is invalid: ${d.errors[0]!.message}`);
      return d.toJS() as K8sObject | null;
    })
    .filter((o): o is K8sObject => o !== null);
}

export function find(objects: readonly K8sObject[], kind: string, name?: string): K8sObject {
  const found = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (found.length !== 1) throw new Error(`expected one ${kind}${name ? ` ${name}` : ''}, found ${found.length}`);
  return found[0]!;
}

const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  'v1/ConfigMap': ConfigMap,
  'v1/Service': Service,
  'v1/ServiceAccount': ServiceAccount,
  'apps/v1/Deployment': Deployment,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
  'rbac.authorization.k8s.io/v1/ClusterRole': ClusterRole,
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': ClusterRoleBinding,
  'rbac.authorization.k8s.io/v1/Role': Role,
  'rbac.authorization.k8s.io/v1/RoleBinding': RoleBinding,
  'admissionregistration.k8s.io/v1/MutatingWebhookConfiguration': MutatingWebhookConfiguration,
};

/** cert-manager's and the Prometheus Operator's kinds: kubernetes-models has no schema for them; the tests check their fields by hand. */
export const UNMODELLED = new Set(['cert-manager.io/v1/Certificate', 'cert-manager.io/v1/Issuer', 'monitoring.coreos.com/v1/PodMonitor', 'monitoring.coreos.com/v1/ServiceMonitor']);

/** Validates against the Kubernetes OpenAPI schema of its kind; an unknown kind is an error, not a pass. */
export function validateObject(o: K8sObject): void {
  const key = `${o.apiVersion}/${o.kind}`;
  if (UNMODELLED.has(key)) return;
  const Model = MODELS[key];
  if (!Model) throw new Error(`no schema model for ${key} in the test's table`);
  new Model(o as never).validate();
}
