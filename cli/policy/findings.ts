import { EGRESS_POLICY_API_VERSION, EGRESS_POLICY_KIND } from '../../shared/constants.js';
import { isObj, type Obj } from '../../shared/json.js';
import type { EgressPolicy } from '../../shared/policy/types.js';
import { validatePolicy, type PolicyIssue } from '../../shared/policy/validate.js';
import { locate } from '../../shared/yaml-locate.js';
import { overlapIssues } from '../../webhook/policy/compile.js';
import type { ParsedDocument } from '../inputs.js';

// `aigress policy validate`'s core, pure: every check the control plane makes on an EgressPolicy or the
// ClusterEgressPolicy (the validator's schema and semantic checks, then the overlap checks, then one policy per
// namespace), each finding with its field path and where in the YAML it is.

export const CLUSTER_POLICY_KIND = 'ClusterEgressPolicy';
export const CLUSTER_POLICY_NAME = 'default';
export const MODES = ['enforce', 'audit'] as const;
export type Mode = (typeof MODES)[number];

export interface Finding {
  source: string;
  index: number;
  /** `EgressPolicy team-a/eu-only`. */
  label: string;
  path: string;
  message: string;
  line?: number;
  col?: number;
}

export interface CheckedPolicy {
  doc: ParsedDocument;
  label: string;
  kind: 'EgressPolicy' | 'ClusterEgressPolicy';
  /** Present when the document has no findings. */
  policy?: EgressPolicy;
  mode: Mode;
  /** The document as the validator saw it (spec.mode taken out while the validator does not know it). */
  validated: Obj;
  findings: Finding[];
}

export interface ValidationReport {
  policies: CheckedPolicy[];
  /** Documents that are not policies (`FILE: document N (Deployment x)`), skipped. */
  skipped: string[];
  findings: Finding[];
}

export function isPolicyDocument(v: unknown): v is Obj {
  return isObj(v) && v.apiVersion === EGRESS_POLICY_API_VERSION && (v.kind === EGRESS_POLICY_KIND || v.kind === CLUSTER_POLICY_KIND);
}

const nameOf = (p: CheckedPolicy): unknown => ((p.doc.value as Obj).metadata as Obj | undefined)?.name;

export function labelOf(v: Obj): string {
  const meta = isObj(v.metadata) ? v.metadata : {};
  const name = typeof meta.name === 'string' ? meta.name : '(unnamed)';
  return `${String(v.kind)} ${typeof meta.namespace === 'string' ? `${meta.namespace}/` : ''}${name}`;
}

/**
 * spec.mode is in the CRD (enforce | audit) ahead of the shared validator, which gains it with audit mode in the
 * data plane. Until then it is checked here and taken out before the validator sees the spec; once the
 * validator knows the field, this passes the document through unchanged apart from that check.
 */
function splitMode(v: Obj, issues: PolicyIssue[]): { doc: Obj; mode: Mode } {
  const spec = isObj(v.spec) ? v.spec : undefined;
  if (!spec || spec.mode === undefined) return { doc: v, mode: 'enforce' };
  const valid = typeof spec.mode === 'string' && (MODES as readonly string[]).includes(spec.mode);
  if (!valid) issues.push({ path: 'spec.mode', message: `must be one of ${MODES.join(', ')} (got ${JSON.stringify(spec.mode)})` });
  const mode: Mode = valid ? (spec.mode as Mode) : 'enforce';
  if (validatePolicy({ ...v, kind: EGRESS_POLICY_KIND, spec: { mode: 'enforce' } }).ok) return { doc: v, mode };
  const { mode: _m, ...rest } = spec;
  return { doc: { ...v, spec: rest }, mode };
}

/** Checks one policy document; findings carry the YAML position of their field. */
export function checkPolicyDocument(d: ParsedDocument): CheckedPolicy {
  const v = d.value as Obj;
  const kind = v.kind === CLUSTER_POLICY_KIND ? CLUSTER_POLICY_KIND : EGRESS_POLICY_KIND;
  const label = labelOf(v);
  const issues: PolicyIssue[] = [];
  const meta = isObj(v.metadata) ? v.metadata : {};
  if (typeof meta.name !== 'string' || meta.name === '') issues.push({ path: 'metadata.name', message: 'required: the policy\'s name' });
  if (kind === CLUSTER_POLICY_KIND) {
    if (typeof meta.name === 'string' && meta.name !== CLUSTER_POLICY_NAME) {
      issues.push({ path: 'metadata.name', message: `a ClusterEgressPolicy must be named ${CLUSTER_POLICY_NAME} (there is one, the cluster default)` });
    }
    if (meta.namespace !== undefined) issues.push({ path: 'metadata.namespace', message: 'a ClusterEgressPolicy is cluster-scoped: remove the namespace' });
  }
  const { doc, mode } = splitMode(v, issues);
  // The validator knows the EgressPolicy kind; the cluster one has the same spec.
  const result = validatePolicy({ ...doc, kind: EGRESS_POLICY_KIND });
  let policy: EgressPolicy | undefined;
  if (!result.ok) issues.push(...result.issues);
  else {
    issues.push(...overlapIssues(result.policy.spec));
    policy = result.policy;
  }
  const findings = issues.map((i): Finding => {
    const pos = locate(d.doc, d.counter, i.path);
    return { source: d.source, index: d.index, label, path: i.path, message: i.message, ...(pos && { line: pos.line, col: pos.col }) };
  });
  return { doc: d, label, kind, mode, validated: doc, findings, ...(findings.length === 0 && policy && { policy }) };
}

/** Every policy in `docs`, plus the checks across documents the controller makes (one policy per namespace). */
export function validateDocuments(docs: readonly ParsedDocument[], opts: { namespace?: string } = {}): ValidationReport {
  const policies: CheckedPolicy[] = [];
  const skipped: string[] = [];
  for (const d of docs) {
    if (!isPolicyDocument(d.value)) {
      skipped.push(`${d.source}: document ${d.index} (${isObj(d.value) ? labelOf(d.value) : 'not an object'}): not an EgressPolicy or ClusterEgressPolicy, skipped`);
      continue;
    }
    policies.push(checkPolicyDocument(d));
  }
  const firstIn = new Map<string, CheckedPolicy>();
  for (const p of policies) {
    const meta = (p.doc.value as Obj).metadata as Obj | undefined;
    const ns = p.kind === CLUSTER_POLICY_KIND ? '(cluster)' : String(meta?.namespace ?? opts.namespace ?? 'default');
    const first = firstIn.get(ns);
    if (!first) {
      firstIn.set(ns, p);
      continue;
    }
    // The same object twice (e.g. an audit and an enforce version of one policy): apply replaces, no conflict.
    if (nameOf(first) === nameOf(p)) continue;
    const pos = locate(p.doc.doc, p.doc.counter, 'metadata.name');
    p.findings.push({
      source: p.doc.source, index: p.doc.index, label: p.label, path: 'metadata.name',
      message: p.kind === CLUSTER_POLICY_KIND
        ? `a second ClusterEgressPolicy (first: ${first.doc.source} document ${first.doc.index})`
        : `namespace ${ns} already has ${first.label} (${first.doc.source} document ${first.doc.index}); only one EgressPolicy per namespace takes effect, the others are refused (Conflict)`,
      ...(pos && { line: pos.line, col: pos.col }),
    });
    delete p.policy;
  }
  return { policies, skipped, findings: policies.flatMap((p) => p.findings) };
}

/** `FILE:LINE:COL: document N (EgressPolicy ns/name): spec.x: message`, like a compiler's. */
export function formatFinding(f: Finding): string {
  const at = f.line === undefined ? f.source : `${f.source}:${f.line}:${f.col}`;
  return `${at}: document ${f.index} (${f.label}): ${f.path ? `${f.path}: ` : ''}${f.message}`;
}
