import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

// Tests that run the real `aigress` binary (exit codes, one-line errors, stdin). bin/aigress.js runs dist/;
// it is rebuilt here only when a source this suite covers is newer than its build output.

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const BIN = join(ROOT, 'bin/aigress.js');

function newest(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : e.name.endsWith('.ts') ? statSync(p).mtimeMs : 0);
  }
  return t;
}

const SOURCE_DIRS = ['webhook', 'cli', 'shared', 'sidecar'];

/** Rebuilds dist/ when any of `outputs` (paths under the repo) is missing or older than a source file. */
export function ensureBuilt(outputs: readonly string[] = ['dist/webhook/inject/inject.js']): void {
  const sources = Math.max(...SOURCE_DIRS.map((d) => newest(join(ROOT, d))));
  const fresh = (o: string): boolean => existsSync(join(ROOT, o)) && statSync(join(ROOT, o)).mtimeMs >= sources;
  if (outputs.every(fresh)) return;
  try {
    execFileSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, 'tsconfig.build.json')], { stdio: 'pipe' });
  } catch {
    // tsc still emits when some file has type errors; the typecheck step reports those.
  }
  const missing = outputs.filter((o) => !existsSync(join(ROOT, o)));
  if (missing.length > 0) throw new Error(`the build produced no ${missing.join(', ')}`);
}

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runCli(args: string[], stdin?: string): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(stdin);
  });
}
