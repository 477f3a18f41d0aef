import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DaemonSet, Deployment, ReplicaSet, StatefulSet } from 'kubernetes-models/apps/v1';
import { CronJob, Job } from 'kubernetes-models/batch/v1';
import { Ingress } from 'kubernetes-models/networking.k8s.io/v1';
import { ConfigMap, Namespace, Pod, Service } from 'kubernetes-models/v1';
import { parse, parseAllDocuments } from 'yaml';
import { UserError } from '../../../shared/errors.js';
import { defaultConfig, parseConfig, type InjectionConfig } from '../../../webhook/config.js';
import { injectManifests } from '../../../webhook/inject/manifests.js';

// The golden corpus (test/fixtures/inject/<case>/): input.yaml, case.yaml (description, optional namespace),
// optional config.yaml; goldens are output.yaml + notes.txt, or error.txt for a refused input.
// UPDATE_GOLDEN=1 rewrites the goldens; every rewritten golden must be read before it is committed.

export const FIXTURES = fileURLToPath(new URL('../../fixtures/inject/', import.meta.url));
export const UPDATE = process.env.UPDATE_GOLDEN === '1';

export interface GoldenCase {
  name: string;
  dir: string;
  description: string;
  namespace?: string;
  config: InjectionConfig;
  input: string;
}

export function loadCases(): GoldenCase[] {
  return readdirSync(FIXTURES, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort()
    .map((name) => {
      const dir = join(FIXTURES, name);
      const meta = parse(readFileSync(join(dir, 'case.yaml'), 'utf8')) as { description: string; namespace?: string };
      const configPath = join(dir, 'config.yaml');
      const config = existsSync(configPath) ? parseConfig(readFileSync(configPath, 'utf8'), configPath).injection : defaultConfig().injection;
      return { name, dir, description: meta.description, namespace: meta.namespace, config, input: readFileSync(join(dir, 'input.yaml'), 'utf8') };
    });
}

export type CaseOutcome = { ok: true; output: string; notes: string[] } | { ok: false; error: string };

export function runManifests(text: string, c: Pick<GoldenCase, 'config' | 'namespace'>): CaseOutcome {
  try {
    const r = injectManifests(text, { config: c.config, namespace: c.namespace });
    return { ok: true, output: r.output, notes: r.notes };
  } catch (err) {
    if (err instanceof UserError) return { ok: false, error: err.message };
    throw err;
  }
}

/** Reads a golden file as it is (never rewritten, whatever UPDATE_GOLDEN says). */
export function readGolden(c: GoldenCase, file: string): string | undefined {
  const path = join(c.dir, file);
  return existsSync(path) ? readFileSync(path, 'utf8') : undefined;
}

/**
 * Reads a golden file, or writes it first when UPDATE_GOLDEN=1; `actual` undefined there empties a stale one
 * (a golden that must not exist for this outcome). To only read one, use readGolden.
 */
export function golden(c: GoldenCase, file: string, actual: string | undefined): string | undefined {
  const path = join(c.dir, file);
  if (UPDATE) {
    if (actual === undefined) {
      if (existsSync(path)) writeFileSync(path, ''); // emptied rather than deleted: the caller asserts on it
    } else writeFileSync(path, actual);
  }
  return existsSync(path) ? readFileSync(path, 'utf8') : undefined;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

export function docs(text: string): unknown[] {
  return parseAllDocuments(text)
    .map((d) => d.toJS() as unknown)
    .filter((v) => v !== null && v !== undefined);
}

const TEMPLATE_PATHS: Record<string, string[]> = {
  Pod: [],
  Deployment: ['spec', 'template'],
  StatefulSet: ['spec', 'template'],
  DaemonSet: ['spec', 'template'],
  ReplicaSet: ['spec', 'template'],
  Job: ['spec', 'template'],
  CronJob: ['spec', 'jobTemplate', 'spec', 'template'],
};

export interface FoundPod {
  /** A Pod built from the object or its template, as the API server would see it at admission. */
  pod: Obj;
  /** The object's namespace, if it says. */
  namespace?: string;
  label: string;
  /** Volumes the StatefulSet controller adds for volumeClaimTemplates. */
  claimVolumes: string[];
  /** The object holding the template (absent for a bare Pod). */
  owner?: { kind: string; name: string };
}

/**
 * The pod as its controller creates it: owner reference to the object that made it (a Deployment's pods are
 * owned by its ReplicaSet `<name>-<hash>` and labelled with the hash, a CronJob's by its Job `<name>-<minutes>`).
 */
export function asCreatedBy(pod: Obj, owner: FoundPod['owner']): Obj {
  if (!owner) return pod;
  const meta = isObj(pod.metadata) ? pod.metadata : {};
  const hash = '7d9f8b6c5';
  const ref =
    owner.kind === 'Deployment'
      ? { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: `${owner.name}-${hash}` }
      : owner.kind === 'CronJob'
        ? { apiVersion: 'batch/v1', kind: 'Job', name: `${owner.name}-29413560` }
        : { apiVersion: owner.kind === 'Job' ? 'batch/v1' : 'apps/v1', kind: owner.kind, name: owner.name };
  const labels = owner.kind === 'Deployment' ? { ...(isObj(meta.labels) ? meta.labels : {}), 'pod-template-hash': hash } : meta.labels;
  return {
    ...pod,
    metadata: { ...meta, ...(labels ? { labels } : {}), ownerReferences: [{ ...ref, uid: 'u-1', controller: true, blockOwnerDeletion: true }] },
  };
}

/** Every pod (or pod template, turned into a Pod) in a list of objects, in document order. */
export function podsOf(objects: unknown[]): FoundPod[] {
  const out: FoundPod[] = [];
  const walk = (o: unknown): void => {
    if (!isObj(o)) return;
    if (o.kind === 'List' && Array.isArray(o.items)) return o.items.forEach(walk);
    const path = TEMPLATE_PATHS[String(o.kind)];
    if (!path) return;
    let t: unknown = o;
    for (const s of path) t = isObj(t) ? t[s] : undefined;
    if (!isObj(t)) return;
    const meta = isObj(o.metadata) ? o.metadata : {};
    const pod = path.length === 0 ? o : { apiVersion: 'v1', kind: 'Pod', metadata: t.metadata ?? {}, spec: t.spec };
    const claims = isObj(o.spec) && Array.isArray(o.spec.volumeClaimTemplates) ? (o.spec.volumeClaimTemplates as Obj[]) : [];
    out.push({
      pod,
      namespace: typeof meta.namespace === 'string' ? meta.namespace : undefined,
      label: `${String(o.kind)} ${String(meta.name)}`,
      claimVolumes: claims.map((c) => String((c.metadata as Obj | undefined)?.name)),
      ...(path.length === 0 ? {} : { owner: { kind: String(o.kind), name: String(meta.name) } }),
    });
  };
  objects.forEach(walk);
  return out;
}

const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  'v1/Pod': Pod,
  'v1/Service': Service,
  'v1/ConfigMap': ConfigMap,
  'v1/Namespace': Namespace,
  'apps/v1/Deployment': Deployment,
  'apps/v1/StatefulSet': StatefulSet,
  'apps/v1/DaemonSet': DaemonSet,
  'apps/v1/ReplicaSet': ReplicaSet,
  'batch/v1/Job': Job,
  'batch/v1/CronJob': CronJob,
  'networking.k8s.io/v1/Ingress': Ingress,
};

/** Validates an object against the Kubernetes OpenAPI schema of its kind (a List item by item). */
export function validateSchema(o: unknown): void {
  if (!isObj(o)) throw new Error('not an object');
  if (o.kind === 'List') return (o.items as unknown[]).forEach(validateSchema);
  const Model = MODELS[`${String(o.apiVersion)}/${String(o.kind)}`];
  if (!Model) throw new Error(`no schema model for ${String(o.apiVersion)} ${String(o.kind)} in the test's table`);
  new Model(o as never).validate();
}

/**
 * What the API server checks beyond the schema and injection could break: unique container and volume names,
 * mounts that name an existing volume, no two mounts on one path, requests within limits, port names ≤ 15 chars.
 */
export function apiServerChecks(pod: Obj, claimVolumes: string[] = []): string[] {
  const problems: string[] = [];
  const spec = pod.spec as Obj;
  const containers = [...((spec.initContainers as Obj[] | undefined) ?? []), ...((spec.containers as Obj[] | undefined) ?? [])];
  const names = containers.map((c) => c.name as string);
  if (new Set(names).size !== names.length) problems.push(`duplicate container names: ${names.join(', ')}`);
  const volumes = [...((spec.volumes as Obj[] | undefined) ?? []).map((v) => v.name as string), ...claimVolumes];
  if (new Set(volumes).size !== volumes.length) problems.push(`duplicate volume names: ${volumes.join(', ')}`);
  const bytes = (q: string): number => {
    const m = /^(\d+(?:\.\d+)?)(m|Ki|Mi|Gi)?$/.exec(q);
    if (!m) throw new Error(`test cannot compare quantity ${q}`);
    return Number(m[1]) * ({ m: 1e-3, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3 }[m[2] as 'm'] ?? 1);
  };
  for (const c of containers) {
    const mounts = (c.volumeMounts as Obj[] | undefined) ?? [];
    for (const m of mounts) if (!volumes.includes(m.name as string)) problems.push(`${String(c.name)} mounts missing volume ${String(m.name)}`);
    const paths = mounts.map((m) => m.mountPath);
    if (new Set(paths).size !== paths.length) problems.push(`${String(c.name)} mounts two volumes on one path`);
    const res = (c.resources as { requests?: Record<string, string>; limits?: Record<string, string> } | undefined) ?? {};
    for (const [k, lim] of Object.entries(res.limits ?? {})) {
      const req = res.requests?.[k];
      if (req !== undefined && bytes(req) > bytes(lim)) problems.push(`${String(c.name)} requests ${k} ${req} above its limit ${lim}`);
    }
    for (const p of (c.ports as Obj[] | undefined) ?? []) {
      if (typeof p.name === 'string' && p.name.length > 15) problems.push(`${String(c.name)} port name ${p.name} over 15 characters`);
    }
    if (c.restartPolicy !== undefined && !(spec.initContainers as Obj[] | undefined)?.includes(c)) {
      problems.push(`${String(c.name)}: restartPolicy is only allowed on init containers`);
    }
  }
  return problems;
}
