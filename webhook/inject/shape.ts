import type { Pod } from './types.js';
import { isObj, type Obj } from '../../shared/json.js';

// The API server hands the webhook well-typed pods, but `aigress inject` reads whatever YAML it is given and the
// webhook must survive anything on the wire. This checks exactly the fields injection reads, so everything after
// it can trust the types; each problem names its field path (e.g. `spec.containers[1].env[0].name`).

export interface ShapeIssue {
  path: string;
  message: string;
}


class Shape {
  readonly issues: ShapeIssue[] = [];
  fail(path: string, message: string): void {
    this.issues.push({ path, message });
  }
  /** Optional object: absent and null are fine. Returns the object when present and well-formed. */
  object(v: unknown, path: string): Obj | undefined {
    if (v === undefined || v === null) return undefined;
    if (!isObj(v)) this.fail(path, `must be an object (got ${describe(v)})`);
    return isObj(v) ? v : undefined;
  }
  list(v: unknown, path: string): unknown[] | undefined {
    if (v === undefined || v === null) return undefined;
    if (!Array.isArray(v)) this.fail(path, `must be a list (got ${describe(v)})`);
    return Array.isArray(v) ? v : undefined;
  }
  string(v: unknown, path: string, required = false): void {
    if (v === undefined || v === null) {
      if (required) this.fail(path, 'required');
      return;
    }
    if (typeof v !== 'string') this.fail(path, `must be a string (got ${describe(v)})`);
    else if (required && v === '') this.fail(path, 'must not be empty');
  }
  boolean(v: unknown, path: string): void {
    if (v !== undefined && v !== null && typeof v !== 'boolean') this.fail(path, `must be true or false (got ${describe(v)})`);
  }
  integer(v: unknown, path: string): void {
    if (v !== undefined && v !== null && !Number.isSafeInteger(v)) this.fail(path, `must be an integer (got ${describe(v)})`);
  }
  stringMap(v: unknown, path: string): void {
    const o = this.object(v, path);
    if (!o) return;
    for (const [k, val] of Object.entries(o)) {
      if (typeof val !== 'string') this.fail(`${path}.${k}`, `must be a string (got ${describe(val)}); quote it in YAML`);
    }
  }
  securityContext(v: unknown, path: string): void {
    const sc = this.object(v, path);
    if (!sc) return;
    this.integer(sc.runAsUser, `${path}.runAsUser`);
    this.integer(sc.runAsGroup, `${path}.runAsGroup`);
    this.boolean(sc.runAsNonRoot, `${path}.runAsNonRoot`);
    this.boolean(sc.privileged, `${path}.privileged`);
    const caps = this.object(sc.capabilities, `${path}.capabilities`);
    for (const k of ['add', 'drop'] as const) {
      this.list(caps?.[k], `${path}.capabilities.${k}`)?.forEach((x, i) => this.string(x, `${path}.capabilities.${k}[${i}]`, true));
    }
  }
  container(v: unknown, path: string): void {
    if (!isObj(v)) {
      this.fail(path, `must be a container object (got ${describe(v)})`);
      return;
    }
    this.string(v.name, `${path}.name`, true);
    this.list(v.envFrom, `${path}.envFrom`);
    this.list(v.env, `${path}.env`)?.forEach((e, i) => {
      const p = `${path}.env[${i}]`;
      if (!isObj(e)) return this.fail(p, `must be an object with a name (got ${describe(e)})`);
      this.string(e.name, `${p}.name`, true);
      this.string(e.value, `${p}.value`);
      this.object(e.valueFrom, `${p}.valueFrom`);
    });
    this.list(v.volumeMounts, `${path}.volumeMounts`)?.forEach((m, i) => {
      const p = `${path}.volumeMounts[${i}]`;
      if (!isObj(m)) return this.fail(p, `must be an object (got ${describe(m)})`);
      this.string(m.name, `${p}.name`, true);
      this.string(m.mountPath, `${p}.mountPath`, true);
    });
    this.securityContext(v.securityContext, `${path}.securityContext`);
    this.string(v.restartPolicy, `${path}.restartPolicy`);
  }
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'an object';
  const text = JSON.stringify(v) ?? String(v);
  return text.length > 40 ? `${text.slice(0, 37)}...` : text;
}

/**
 * Checks that `value` has the Pod shape injection relies on. `prefix` is prepended to every field path, so a
 * Deployment's template reports `spec.template.spec.containers[0].name`.
 */
export function checkPodShape(value: unknown, prefix = ''): { ok: true; pod: Pod } | { ok: false; issues: ShapeIssue[] } {
  const s = new Shape();
  const at = (p: string): string => (prefix ? `${prefix}.${p}` : p);
  if (!isObj(value)) {
    s.fail(prefix || '(object)', `must be an object (got ${describe(value)})`);
    return { ok: false, issues: s.issues };
  }
  const meta = s.object(value.metadata, at('metadata'));
  if (meta) {
    s.string(meta.name, at('metadata.name'));
    s.string(meta.generateName, at('metadata.generateName'));
    s.string(meta.namespace, at('metadata.namespace'));
    s.stringMap(meta.labels, at('metadata.labels'));
    s.stringMap(meta.annotations, at('metadata.annotations'));
  }
  const spec = s.object(value.spec, at('spec'));
  if (!spec) {
    if (value.spec === undefined || value.spec === null) s.fail(at('spec'), 'required');
    return { ok: false, issues: s.issues };
  }
  const containers = s.list(spec.containers, at('spec.containers'));
  if (spec.containers === undefined || spec.containers === null) s.fail(at('spec.containers'), 'required');
  else if (containers?.length === 0) s.fail(at('spec.containers'), 'must list at least one container');
  containers?.forEach((c, i) => s.container(c, at(`spec.containers[${i}]`)));
  s.list(spec.initContainers, at('spec.initContainers'))?.forEach((c, i) => s.container(c, at(`spec.initContainers[${i}]`)));
  s.list(spec.volumes, at('spec.volumes'))?.forEach((v, i) => {
    if (!isObj(v)) return s.fail(at(`spec.volumes[${i}]`), `must be an object (got ${describe(v)})`);
    s.string(v.name, at(`spec.volumes[${i}].name`), true);
  });
  s.boolean(spec.hostNetwork, at('spec.hostNetwork'));
  s.securityContext(spec.securityContext, at('spec.securityContext'));
  s.string(spec.serviceAccountName, at('spec.serviceAccountName'));
  s.string(spec.restartPolicy, at('spec.restartPolicy'));
  const os = s.object(spec.os, at('spec.os'));
  if (os) s.string(os.name, at('spec.os.name'));
  return s.issues.length === 0 ? { ok: true, pod: value as Pod } : { ok: false, issues: s.issues };
}

export function formatShapeIssues(issues: ShapeIssue[]): string {
  const first = issues[0];
  if (!first) return '';
  const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : '';
  return `${first.path}: ${first.message}${more}`;
}
