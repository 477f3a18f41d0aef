import { CST, Composer, Parser, stringify, type Document } from 'yaml';
import { UserError } from '../../shared/errors.js';
import type { InjectionConfig } from '../config.js';
import { inject } from './inject.js';
import { checkPodShape, formatShapeIssues } from './shape.js';
import { workloadOfManifest } from './workload.js';
import type { Pod } from './types.js';
import { isObj, type Obj } from '../../shared/json.js';

// `aigress inject`'s core: multi-document YAML in, YAML out, with the same decision the webhook makes applied to
// every pod and pod template. Pure (text in, text out); the CLI only reads the file and prints.

export interface ManifestOptions {
  config: InjectionConfig;
  /** Namespace for the skip rules; default: the object's own, else "default". */
  namespace?: string;
}

export interface ManifestResult {
  output: string;
  /** One line per skipped workload or warning, for stderr. */
  notes: string[];
  /** How many documents were changed (pods or templates injected). */
  injected: number;
}


/** Where the pod template of each supported kind lives; undefined for kinds kept as they are. */
function templatePath(apiVersion: string, kind: string): string[] | undefined {
  const group = apiVersion.includes('/') ? apiVersion.slice(0, apiVersion.indexOf('/')) : '';
  if (kind === 'Pod' && group === '') return [];
  if (['Deployment', 'DaemonSet', 'ReplicaSet'].includes(kind) && (group === 'apps' || group === 'extensions')) {
    return ['spec', 'template'];
  }
  if (kind === 'StatefulSet' && group === 'apps') return ['spec', 'template'];
  if (kind === 'Job' && group === 'batch') return ['spec', 'template'];
  if (kind === 'CronJob' && group === 'batch') return ['spec', 'jobTemplate', 'spec', 'template'];
  return undefined;
}

/**
 * Kinds that make pods but that `aigress inject` does not rewrite, so the user is told rather than left to find
 * out that their pods run uncaptured. In a cluster the webhook still injects the pods they create (it sees Pods,
 * whatever made them), as long as the namespace is opted in.
 */
function notInjectedKind(apiVersion: string, kind: string): string | undefined {
  const group = apiVersion.includes('/') ? apiVersion.slice(0, apiVersion.indexOf('/')) : '';
  if (kind === 'ReplicationController' && group === '') {
    return 'ReplicationController is not rewritten by aigress inject (use a Deployment); the webhook injects its pods in an opted-in namespace';
  }
  const known: Record<string, string> = {
    'argoproj.io/Workflow': 'Argo Workflow',
    'argoproj.io/WorkflowTemplate': 'Argo WorkflowTemplate',
    'argoproj.io/CronWorkflow': 'Argo CronWorkflow',
    'serving.knative.dev/Service': 'Knative Service',
    'serving.knative.dev/Configuration': 'Knative Configuration',
  };
  const name = known[`${group}/${kind}`];
  if (name) return `${name} embeds pod templates that aigress inject does not rewrite; the webhook injects the pods it creates in an opted-in namespace`;
  return undefined;
}

interface Walk {
  changed: boolean;
  value: Obj;
}

function objectLabel(o: Obj): string {
  const meta = isObj(o.metadata) ? o.metadata : {};
  const name = typeof meta.name === 'string' ? meta.name : typeof meta.generateName === 'string' ? `${meta.generateName}*` : '(unnamed)';
  return `${String(o.kind)} ${name}`;
}

function injectObject(o: unknown, where: string, opts: ManifestOptions, notes: string[]): Walk {
  if (!isObj(o)) throw new UserError(`${where}: not a Kubernetes object (expected a map with apiVersion and kind)`);
  for (const field of ['apiVersion', 'kind'] as const) {
    if (typeof o[field] !== 'string' || o[field] === '') throw new UserError(`${where}: ${field}: required (a non-empty string)`);
  }
  const apiVersion = o.apiVersion as string;
  const kind = o.kind as string;
  const label = `${where} (${objectLabel(o)})`;

  if (kind === 'List' && apiVersion === 'v1') {
    if (!Array.isArray(o.items)) throw new UserError(`${label}: items: must be a list`);
    let changed = false;
    const items = o.items.map((item, i) => {
      const w = injectObject(item, `${where} items[${i}]`, opts, notes);
      changed ||= w.changed;
      return w.value;
    });
    return { changed, value: changed ? { ...o, items } : o };
  }

  const path = templatePath(apiVersion, kind);
  if (!path) {
    const why = notInjectedKind(apiVersion, kind);
    if (why) notes.push(`${label}: not injected: ${why}`);
    return { changed: false, value: o };
  }
  let template: unknown = o;
  for (const s of path) template = isObj(template) ? template[s] : undefined;
  const prefix = path.join('.');
  if (!isObj(template)) throw new UserError(`${label}: ${prefix}: required (a pod template)`);
  const shape = checkPodShape(template, prefix);
  if (!shape.ok) throw new UserError(`${label}: ${formatShapeIssues(shape.issues)}`);

  const meta = isObj(o.metadata) ? o.metadata : {};
  const namespace = opts.namespace ?? (typeof meta.namespace === 'string' && meta.namespace !== '' ? meta.namespace : 'default');
  const workload = workloadOfManifest(kind, typeof meta.name === 'string' ? meta.name : undefined);
  const r = inject(template, workload === undefined ? { namespace } : { namespace, workload }, opts.config);
  if (r.denied) throw new UserError(`${label}: ${r.denied.message}`);
  for (const w of r.warnings) notes.push(`${label}: warning: ${w}`);
  if (r.patch.length === 0) {
    notes.push(`${label}: not injected: ${r.skippedReason ?? 'nothing to change'}`);
    return { changed: false, value: o };
  }
  return { changed: true, value: replaceTemplate(o, path, r.pod!) };
}

/** A copy of `o` with the pod template at `path` swapped for the injected one (metadata first, as kubectl prints). */
function replaceTemplate(o: Obj, path: string[], pod: Pod): Obj {
  if (path.length === 0) return pod;
  const [head, ...rest] = path as [string, ...string[]];
  if (rest.length === 0) {
    const old = o[head] as Obj;
    return { ...o, [head]: Object.assign({ metadata: undefined }, old, { metadata: pod.metadata, spec: pod.spec }) };
  }
  return { ...o, [head]: replaceTemplate(o[head] as Obj, rest, pod) };
}

/**
 * Splits a YAML stream into documents, each with its exact source text (comments and layout included; the `---`
 * marker and `...` end dropped), so documents that need no change are printed byte for byte as they came.
 */
function splitDocuments(text: string): Array<{ source: string; doc: Document.Parsed }> {
  const tokens = [...new Parser().parse(text)];
  const docs = [...new Composer().compose(tokens)];
  const sources: string[] = [];
  let pending = ''; // comments between documents belong to the next one
  for (const t of tokens) {
    if (t.type === 'document') {
      const own = CST.stringify(t).replace(/^---[ \t]*(\n)?/, '');
      sources.push(pending + own);
      pending = '';
    } else if (t.type === 'comment' || t.type === 'newline' || t.type === 'space') {
      pending += CST.stringify(t);
    }
  }
  return docs.map((doc, i) => ({ doc, source: sources[i] ?? '' }));
}

/**
 * Injects every Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob and v1 List in the YAML text;
 * other documents come back exactly as they were, empty ones are dropped. Throws a one-line UserError naming
 * the document and field for invalid YAML, an invalid object, or a pod the webhook would deny.
 */
export function injectManifests(text: string, opts: ManifestOptions): ManifestResult {
  const notes: string[] = [];
  const out: string[] = [];
  let injected = 0;
  splitDocuments(text).forEach(({ doc, source }, i) => {
    const where = `document ${i + 1}`;
    if (doc.errors.length > 0) throw new UserError(`${where}: invalid YAML: ${doc.errors[0]!.message.split('\n')[0]}`);
    let value: unknown;
    try {
      value = doc.toJS();
    } catch (err) {
      throw new UserError(`${where}: invalid YAML: ${(err as Error).message.split('\n')[0]}`);
    }
    if (value === null || value === undefined) return;
    const w = injectObject(value, where, opts, notes);
    const unchanged = source.endsWith('\n') ? source : `${source}\n`;
    if (w.changed) injected++;
    out.push(w.changed ? stringify(w.value, { lineWidth: 0 }) : unchanged);
  });
  return { output: out.join('---\n'), notes, injected };
}
