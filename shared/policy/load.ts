import { readFile } from 'node:fs/promises';
import { parseAllDocuments } from 'yaml';
import { UserError } from '../errors.js';
import type { EgressPolicy } from './types.js';
import { formatIssues, validatePolicy } from './validate.js';

/** Parses and validates an EgressPolicy from YAML or JSON text; throws UserError naming the source and field. */
export function parsePolicy(text: string, source: string): EgressPolicy {
  const docs = parseAllDocuments(text).filter((d) => d.contents !== null);
  if (docs.length !== 1) throw new UserError(`${source}: expected exactly one EgressPolicy document, found ${docs.length}`);
  const doc = docs[0]!;
  if (doc.errors.length > 0) throw new UserError(`${source}: invalid YAML: ${doc.errors[0]!.message.split('\n')[0]}`);
  let value: unknown;
  try {
    // toJS resolves aliases: an unresolved one (`*a` without `&a`) or too many (a billion-laughs document)
    // throws here, found by fuzzing (test/hostile/fuzz.test.ts).
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw new UserError(`${source}: invalid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  const result = validatePolicy(value);
  if (!result.ok) throw new UserError(`${source}: invalid EgressPolicy: ${formatIssues(result.issues)}`);
  return result.policy;
}

export async function loadPolicyFile(path: string): Promise<EgressPolicy> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new UserError(`cannot read policy file ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  return parsePolicy(text, path);
}
