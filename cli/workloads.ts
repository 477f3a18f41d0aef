import { isObj, type Obj } from '../shared/json.js';

// Where each workload kind keeps its pod template, for the commands that look at pods in manifests
// (`uninject`, `policy explain --pod`). The same table `aigress inject` uses (webhook/inject/manifests.ts).

/** Path of the pod template inside an object of this kind; [] for a Pod; undefined for kinds without one. */
export function podTemplatePath(apiVersion: unknown, kind: unknown): string[] | undefined {
  if (typeof apiVersion !== 'string' || typeof kind !== 'string') return undefined;
  const group = apiVersion.includes('/') ? apiVersion.slice(0, apiVersion.indexOf('/')) : '';
  if (kind === 'Pod' && group === '') return [];
  if (['Deployment', 'DaemonSet', 'ReplicaSet'].includes(kind) && (group === 'apps' || group === 'extensions')) return ['spec', 'template'];
  if (kind === 'StatefulSet' && group === 'apps') return ['spec', 'template'];
  if (kind === 'Job' && group === 'batch') return ['spec', 'template'];
  if (kind === 'CronJob' && group === 'batch') return ['spec', 'jobTemplate', 'spec', 'template'];
  return undefined;
}

export function getPath(o: Obj, path: readonly string[]): unknown {
  let cur: unknown = o;
  for (const s of path) cur = isObj(cur) ? cur[s] : undefined;
  return cur;
}

/** A copy of `o` with the value at `path` replaced (path non-empty; every step an existing map). */
export function setPath(o: Obj, path: readonly string[], value: unknown): Obj {
  if (path.length === 0) return value as Obj;
  const [head, ...rest] = path as [string, ...string[]];
  return { ...o, [head]: rest.length === 0 ? value : setPath(o[head] as Obj, rest, value) };
}
