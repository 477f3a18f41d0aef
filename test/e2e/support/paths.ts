import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

// Where things are, resolved from this file so the suite runs from any checkout.

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const APPS_DIR = join(REPO_ROOT, 'test/e2e/apps');
export const AIGRESS_BIN = join(REPO_ROOT, 'bin/aigress.js');
/** The `aigress` of the injected spec's `command`, as this checkout runs it. */
export const AIGRESS_ENTRYPOINT: readonly string[] = [process.execPath, AIGRESS_BIN];
/** Debian's python3 (with python3-requests); a pyenv python3 may come first on PATH. */
export const PYTHON = '/usr/bin/python3';
export const CURL = '/usr/bin/curl';
