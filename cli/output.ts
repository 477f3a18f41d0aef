import { parseAllDocuments } from 'yaml';
import { UserError } from '../shared/errors.js';

// `-o yaml|json` for the commands that print manifests. YAML is printed as produced (unchanged documents byte
// for byte); JSON is one object, or a v1 List of them when there are several, as kubectl prints.

export type ManifestFormat = 'yaml' | 'json';

export function manifestFormat(o: string | undefined): ManifestFormat {
  const v = o ?? 'yaml';
  if (v !== 'yaml' && v !== 'json') throw new UserError(`-o ${JSON.stringify(v)}: must be yaml or json`, 2);
  return v;
}

export function printManifests(yamlText: string, format: ManifestFormat): string {
  if (format === 'yaml') return yamlText;
  const objects = parseAllDocuments(yamlText).map((d) => d.toJS() as unknown).filter((v) => v !== null && v !== undefined);
  const value = objects.length === 1 ? objects[0] : { apiVersion: 'v1', kind: 'List', items: objects };
  return `${JSON.stringify(value, null, 2)}\n`;
}

/** Joins the outputs of several files as one YAML stream. */
export function joinStreams(parts: readonly string[]): string {
  return parts.filter((p) => p !== '').join('---\n');
}

export const collect = (v: string, prev: string[] = []): string[] => [...prev, v];
