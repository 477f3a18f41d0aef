// The sidecar image's code: one esbuild bundle of the `proxy` and `init` entry points (cli/sidecar.ts) with what
// they import, into dist-sidecar/, plus the SO_ORIGINAL_DST addon beside it. Dynamic imports stay separate
// chunks (splitting), so the proxy still loads its cluster-mode and upstream code only when it needs them.
//   node scripts/bundle-sidecar.mjs        (after npm ci; prints the bundle's size)
import { build } from 'esbuild';
import { copyFileSync, existsSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

const root = join(dirname(new URL(import.meta.url).pathname), '..');
const out = join(root, 'dist-sidecar');
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
console.log(`dist-sidecar/: ${(total / 1024).toFixed(0)} KiB`);
