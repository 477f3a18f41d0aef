import { parseJsonPath, type TransformFilter, type TransformValue } from '../../../shared/policy/filters.js';
import { CONTINUE } from '../deny.js';
import type { BodyDocument, JsonRecord } from '../body.js';
import type { Exchange, Processor, Verdict } from '../types.js';
import { FilterTools, type FilterEnv } from './common.js';
import { commitDecoded, readableBody } from './request-body.js';

// `type: transform` (GEP-5091's in-process processor): sets or removes body fields by simple JSONPath and sets
// or removes headers, with literal values or fields of the pod's identity (e.g. `$.user` ← the workload). Paths
// are compiled once per policy. Setting a field creates the objects on its way; a path through an array index
// that does not exist, or through a value that is not an object, changes nothing. A transform that would
// need a value the identity does not have (no workload known) fails per its failure mode rather than guess.

type Path = (string | number)[];

function setPath(root: JsonRecord, path: Path, value: string): boolean {
  let node: unknown = root;
  for (let i = 0; i < path.length - 1; i++) {
    const k = path[i]!;
    const parent = node as Record<string | number, unknown>;
    let next = parent[k];
    if (next === undefined && typeof k === 'string' && !Array.isArray(parent)) next = parent[k] = {};
    if (next === null || typeof next !== 'object') return false;
    if (typeof path[i + 1] === 'number' && !Array.isArray(next)) return false;
    node = next;
  }
  const last = path[path.length - 1]!;
  if (Array.isArray(node) && (typeof last !== 'number' || last >= node.length)) return false;
  const parent = node as Record<string | number, unknown>;
  if (parent[last] === value) return false;
  parent[last] = value;
  return true;
}

function removePath(root: JsonRecord, path: Path): boolean {
  let node: unknown = root;
  for (let i = 0; i < path.length - 1; i++) {
    if (node === null || typeof node !== 'object') return false;
    node = (node as Record<string | number, unknown>)[path[i]!];
  }
  const last = path[path.length - 1]!;
  if (node === null || typeof node !== 'object') return false;
  if (Array.isArray(node)) {
    if (typeof last !== 'number' || last >= node.length) return false;
    node.splice(last, 1);
    return true;
  }
  const parent = node as Record<string, unknown>;
  if (!(String(last) in parent)) return false;
  delete parent[String(last)];
  return true;
}

export function transformFilter(f: TransformFilter, env: FilterEnv): Processor {
  const tools = new FilterTools(f, env);
  const sets = f.setBodyFields.map((x) => ({ path: parseJsonPath(x.path)!, src: x as TransformValue }));
  const removes = f.removeBodyFields.map((p) => parseJsonPath(p)!);
  const valueOf = (ex: Exchange, v: TransformValue): string | undefined => ('value' in v ? v.value : ex.identity[v.fromIdentity]);

  const request = (ex: Exchange): Verdict => {
    const bodyWork = sets.length + removes.length > 0;
    const values: string[] = [];
    for (const { src } of [...sets, ...f.setHeaders.map((h) => ({ src: h as TransformValue }))]) {
      const v = valueOf(ex, src);
      if (v === undefined) return tools.failed(ex, 'request', `the pod's ${'fromIdentity' in src ? src.fromIdentity : 'value'} is not known`);
      values.push(v);
    }
    let changedBody = false;
    let doc: BodyDocument = ex.request.body;
    let decoded = false;
    if (bodyWork && ex.request.body.length > 0) {
      const readable = readableBody(ex);
      if ('why' in readable) return tools.uninspectable(ex, 'request', readable.why);
      ({ doc, decoded } = readable);
      const json = doc.json();
      if (!json) return tools.uninspectable(ex, 'request', 'body is not a JSON object');
      // decide on a copy first, so a signed request is refused before anything changed
      const probe = structuredClone(json) as JsonRecord;
      sets.forEach((s, i) => (changedBody = setPath(probe, s.path, values[i]!) || changedBody));
      for (const p of removes) changedBody = removePath(probe, p) || changedBody;
    }
    const headerValues = values.slice(sets.length);
    const headerChanges = f.setHeaders.some((h, i) => ex.request.headers.get(h.name) !== headerValues[i]) || f.removeHeaders.some((h) => ex.request.headers.has(h));
    if (!changedBody && !headerChanges) return CONTINUE;
    if (tools.audit) {
      // audit mode changes nothing: what the transform would have set is recorded
      tools.record(ex, 'request', 'would-rewrite', { ...(changedBody && { body: sets.length + removes.length }), ...(headerChanges && { headers: f.setHeaders.length + f.removeHeaders.length }) });
      return CONTINUE;
    }
    const refused = tools.signedRefusal(ex);
    if (refused) return refused;
    const found: Record<string, number> = {};
    if (changedBody) {
      doc.edit((j) => {
        sets.forEach((s, i) => setPath(j, s.path, values[i]!));
        for (const p of removes) removePath(j, p);
      });
      if (decoded) commitDecoded(ex, doc);
      found.body = sets.length + removes.length;
    }
    if (headerChanges) {
      f.setHeaders.forEach((h, i) => ex.request.headers.set(h.name, headerValues[i]!));
      for (const h of f.removeHeaders) ex.request.headers.delete(h);
      found.headers = f.setHeaders.length + f.removeHeaders.length;
    }
    tools.record(ex, 'request', 'rewrite', found);
    return CONTINUE;
  };

  return { ...tools.props, onRequest: (ex) => tools.time('request', () => request(ex)) };
}
