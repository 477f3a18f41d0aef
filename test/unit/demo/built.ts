import { join } from 'node:path';
import { ensureBuilt, ROOT } from '../inject/built-cli.js';

// The demo's tests run the build: bin/aigress.js and dist/cli/demo/fake-provider-main.js.

export { BIN, ROOT, runCli } from '../inject/built-cli.js';
export const FAKE_PROVIDER_MAIN = join(ROOT, 'dist/cli/demo/fake-provider-main.js');

export function ensureDemoBuilt(): void {
  ensureBuilt(['dist/cli/demo/run.js', 'dist/cli/demo/fake-provider-main.js']);
}
