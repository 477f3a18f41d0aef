import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { LineCounter, parseAllDocuments, type Document } from 'yaml';
import { UserError } from '../shared/errors.js';

// What `-f FILE|DIR|-` means for every command that reads manifests: files as given, a directory's *.yaml, *.yml
// and *.json files in name order (with --recursive its subdirectories too), `-` standard input. YAML errors are
// reported with the file, the document, the line and the column.

export interface InputFile {
  /** As the user named it (`-` is shown as `<stdin>`). */
  source: string;
  text: string;
}

export interface ParsedDocument {
  source: string;
  /** 1-based position in its file. */
  index: number;
  doc: Document.Parsed;
  counter: LineCounter;
  value: unknown;
}

const MANIFEST = /\.(ya?ml|json)$/i;

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

async function filesOf(dir: string, recursive: boolean): Promise<string[]> {
  const entries = (await readdir(dir, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name));
  const out: string[] = [];
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory() && recursive) out.push(...(await filesOf(p, true)));
    else if (e.isFile() && MANIFEST.test(e.name)) out.push(p);
  }
  return out;
}

/** Reads every `-f` in order; `-` may appear once. Throws UserError naming the path it cannot read. */
export async function readInputs(names: readonly string[], opts: { recursive?: boolean } = {}): Promise<InputFile[]> {
  if (names.filter((n) => n === '-').length > 1) throw new UserError('-f -: standard input can be read only once', 2);
  const out: InputFile[] = [];
  for (const name of names) {
    if (name === '-') {
      out.push({ source: '<stdin>', text: await readStdin() });
      continue;
    }
    const code = (err: unknown): string => (err as NodeJS.ErrnoException).code ?? String(err);
    let isDir: boolean;
    try {
      isDir = (await stat(name)).isDirectory();
    } catch (err) {
      throw new UserError(`cannot read ${name}: ${code(err)}`);
    }
    const files = isDir ? await filesOf(name, opts.recursive === true) : [name];
    if (isDir && files.length === 0) throw new UserError(`${name}: no .yaml, .yml or .json files in this directory`);
    for (const f of files) {
      try {
        out.push({ source: f, text: await readFile(f, 'utf8') });
      } catch (err) {
        throw new UserError(`cannot read ${f}: ${code(err)}`);
      }
    }
  }
  return out;
}

/** `FILE: document N: invalid YAML at line L, column C: message` (the first error of the document). */
export function yamlError(source: string, index: number, err: { message: string; linePos?: Array<{ line: number; col: number }> }): UserError {
  const pos = err.linePos?.[0];
  const where = pos ? ` at line ${pos.line}, column ${pos.col}` : '';
  // the yaml library's message repeats the position and adds a source excerpt on further lines
  const message = err.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
  return new UserError(`${source}: document ${index}: invalid YAML${where}: ${message}`);
}

/** Every non-empty document of a file, parsed; throws UserError with line and column on the first bad one. */
export function parseDocuments(file: InputFile): ParsedDocument[] {
  const counter = new LineCounter();
  const docs = parseAllDocuments(file.text, { lineCounter: counter, prettyErrors: true });
  if (!Array.isArray(docs)) {
    // an empty stream is an EmptyStream, not a list
    return [];
  }
  const out: ParsedDocument[] = [];
  docs.forEach((doc, i) => {
    if (doc.errors.length > 0) throw yamlError(file.source, i + 1, doc.errors[0]!);
    let value: unknown;
    try {
      value = doc.toJS();
    } catch (err) {
      throw new UserError(`${file.source}: document ${i + 1}: invalid YAML: ${(err as Error).message.split('\n')[0]}`);
    }
    if (value !== null && value !== undefined) out.push({ source: file.source, index: i + 1, doc, counter, value });
  });
  return out;
}
