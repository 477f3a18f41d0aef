import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ensureBuilt, ROOT } from '../inject/built-cli.js';

// The demo's tests run the build (bin/aigress.js, dist/cli/demo/fake-provider-main.js). The inject suite's
// ensureBuilt covers webhook/, cli/ and shared/; the demo also runs the proxy (sidecar/), so that is checked too.

export { BIN, ROOT, runCli } from '../inject/built-cli.js';
export const FAKE_PROVIDER_MAIN = join(ROOT, 'dist/cli/demo/fake-provider-main.js');

function newest(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : e.name.endsWith('.ts') ? statSync(p).mtimeMs : 0);
  }
  return t;
}

export function ensureDemoBuilt(): void {
  ensureBuilt();
  const out = join(ROOT, 'dist/cli/demo/run.js');
  const sources = Math.max(newest(join(ROOT, 'sidecar')), newest(join(ROOT, 'cli')), newest(join(ROOT, 'shared')), newest(join(ROOT, 'webhook')));
  if (existsSync(out) && existsSync(FAKE_PROVIDER_MAIN) && statSync(out).mtimeMs >= sources) return;
  try {
    execFileSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, 'tsconfig.build.json')], { stdio: 'pipe' });
  } catch {
    // Type errors in files other people are still writing do not stop tsc from emitting.
  }
  if (!existsSync(out) || !existsSync(FAKE_PROVIDER_MAIN)) throw new Error('the build produced no dist/cli/demo/');
}
