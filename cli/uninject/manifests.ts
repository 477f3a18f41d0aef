import { stringify } from 'yaml';
import { UserError } from '../../shared/errors.js';
import { isObj, type Obj } from '../../shared/json.js';
import { getPath, podTemplatePath, setPath } from '../workloads.js';
import { splitDocuments } from '../yaml-stream.js';
import { uninjectPod } from './pod.js';

// `aigress uninject`'s core: multi-document YAML in, the same documents without aigress out. Documents with
// nothing of aigress in them come back byte for byte. Pure.

export interface UninjectOutput {
  output: string;
  /** How many pods and pod templates had aigress taken out. */
  changed: number;
}

function uninjectObject(o: unknown, where: string): { value: unknown; changed: number } {
  if (!isObj(o)) throw new UserError(`${where}: not a Kubernetes object (expected a map with apiVersion and kind)`);
  if (o.kind === 'List' && o.apiVersion === 'v1') {
    if (!Array.isArray(o.items)) throw new UserError(`${where} (List): items: must be a list`);
    let changed = 0;
    const items = o.items.map((item, i) => {
      const r = uninjectObject(item, `${where} items[${i}]`);
      changed += r.changed;
      return r.value;
    });
    return { value: changed > 0 ? { ...o, items } : o, changed };
  }
  const path = podTemplatePath(o.apiVersion, o.kind);
  if (!path) return { value: o, changed: 0 };
  const template = getPath(o, path);
  if (!isObj(template)) return { value: o, changed: 0 };
  const r = uninjectPod(template);
  return r.changed ? { value: setPath(o as Obj, path, r.pod), changed: 1 } : { value: o, changed: 0 };
}

export function uninjectManifests(text: string): UninjectOutput {
  const out: string[] = [];
  let changed = 0;
  splitDocuments(text).forEach(({ doc, source }, i) => {
    const where = `document ${i + 1}`;
    if (doc.errors.length > 0) throw new UserError(`${where}: invalid YAML: ${doc.errors[0]!.message.split('\n')[0]}`);
    const value: unknown = doc.toJS();
    if (value === null || value === undefined) return;
    const r = uninjectObject(value, where);
    changed += r.changed;
    out.push(r.changed > 0 ? stringify(r.value, { lineWidth: 0 }) : source.endsWith('\n') ? source : `${source}\n`);
  });
  return { output: out.join('---\n'), changed };
}
