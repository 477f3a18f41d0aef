// The sidecar image's code: one esbuild bundle of the `proxy` and `init` entry points (cli/sidecar.ts) with what
// they import, into dist-sidecar/, plus the SO_ORIGINAL_DST addon beside it. Dynamic imports stay separate
// chunks (splitting), so the proxy still loads its cluster-mode and upstream code only when it needs them.
// The proxy's code sits in a chunk (chunks/), not beside the addon: original-dst.ts also looks beside the entry.
//   node scripts/bundle-sidecar.mjs [OUT_DIR]     (after npm ci; default dist-sidecar/; prints the bundle's size)
import { build } from 'esbuild';
import { copyFileSync, existsSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const root = join(dirname(new URL(import.meta.url).pathname), '..');
const out = process.argv[2] ? resolve(process.argv[2]) : join(root, 'dist-sidecar');
// It is emptied first: never the repository itself or a parent of it.
if (root === out || root.startsWith(out + '/') || out === '/') throw new Error(`bundle-sidecar: refusing to empty ${out}`);
rmSync(out, { recursive: true, force: true });
await build({
  entryPoints: [join(root, 'cli/sidecar.ts')],
  outdir: out,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  minify: true,
  legalComments: 'linked',
  entryNames: 'aigress',
  chunkNames: 'chunks/[name]-[hash]',
  outExtension: { '.js': '.mjs' },
  // CommonJS dependencies (prom-client, pino…) call require(): give the ESM bundle one.
  banner: { js: "import { createRequire as __aigressRequire } from 'node:module'; const require = __aigressRequire(import.meta.url);" },
  logLevel: 'warning',
});
const addon = join(root, 'build/Release/original_dst.node');
if (existsSync(addon)) copyFileSync(addon, join(out, 'original_dst.node'));
else console.warn('bundle-sidecar: build/Release/original_dst.node missing (npm run build:native); the bundle routes by name only');
// Chunks import one another relative to their own place: keep the directory's own package type explicit.
writeFileSync(join(out, 'package.json'), '{ "type": "module" }\n');

let total = 0;
const walk = (d) => {
  for (const f of readdirSync(d)) {
    const p = join(d, f);
    if (statSync(p).isDirectory()) walk(p);
    else total += statSync(p).size;
  }
};
walk(out);
console.log(`${relative(process.cwd(), out) || '.'}/: ${(total / 1024).toFixed(0)} KiB`);
