// Builds the SO_ORIGINAL_DST addon (sidecar/native/original_dst.c → build/Release/original_dst.node) with
// node-gyp, offline: the headers of the running Node are used when they are installed beside it (they are in
// the official tarballs and images), so nothing is downloaded. Run by `npm ci` (the root package's install
// script) and explicitly by .ci/run and the Dockerfile. A failed build is a warning, not an install failure:
// the proxy then runs without original destinations and says so at start (docs/capture.md).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const root = join(dirname(new URL(import.meta.url).pathname), '..');
const strict = process.argv.includes('--strict');
const prefix = dirname(dirname(process.execPath));
const args = ['rebuild', '--release'];
if (existsSync(join(prefix, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${prefix}`);

// node-gyp ships inside npm; an npm script has it on PATH, a plain `node scripts/build-native.mjs` finds it
// next to the npm that belongs to this node.
function nodeGyp() {
  const bundled = join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  if (existsSync(bundled)) return [process.execPath, bundled];
  try {
    return [process.execPath, createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js')];
  } catch {
    return ['node-gyp'];
  }
}

const [cmd, ...pre] = nodeGyp();
const r = spawnSync(cmd, [...pre, ...args], { cwd: root, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
if (r.status === 0) {
  console.log('aigress: built build/Release/original_dst.node (SO_ORIGINAL_DST)');
} else {
  const why = r.error?.message ?? (r.stderr ?? '').trim().split('\n').slice(-3).join(' | ');
  console.warn(`aigress: the SO_ORIGINAL_DST addon did not build (${why}); the proxy will route by name only`);
  if (strict) process.exit(1);
}
