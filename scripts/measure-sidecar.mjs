// Measures the sidecar bundle against dist/: spawn → /readyz 200 and the proxy's RSS at that moment, standalone
// mode, median of 5 runs each, one variant after the other on this machine. Prints a Markdown table
// (docs/image.md). Needs `npm run build` and `node scripts/bundle-sidecar.mjs` first.
//   node scripts/measure-sidecar.mjs
import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { setTimeout } from 'node:timers';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';

const root = join(dirname(new URL(import.meta.url).pathname), '..');
const { createCA } = await import(join(root, 'dist/shared/pki.js'));
const dir = mkdtempSync(join(tmpdir(), 'aigress-measure-'));
const ca = await createCA('measure CA', 1);
mkdirSync(join(dir, 'ca'));
writeFileSync(join(dir, 'ca', 'tls.crt'), ca.certPem);
writeFileSync(join(dir, 'ca', 'tls.key'), ca.keyPem);
writeFileSync(join(dir, 'policy.yaml'), 'apiVersion: aigress.io/v1alpha1\nkind: EgressPolicy\nmetadata: { name: m }\nspec:\n  providers: [openai]\n');

const ready = (port) =>
  new Promise((resolve) => {
    get({ host: '127.0.0.1', port, path: '/readyz' }, (r) => {
      r.resume();
      resolve(r.statusCode === 200);
    }).on('error', () => resolve(false));
  });

async function once(entry, i) {
  const admin = 24000 + i;
  const t0 = performance.now();
  const child = spawn(process.execPath, [entry, 'proxy', '--policy', join(dir, 'policy.yaml'), '--ca-dir', join(dir, 'ca'), '--bundle-dir', join(dir, `b${i}`), '--capture-port', String(admin + 100), '--admin-port', String(admin), '--log-level', 'error'], { stdio: 'ignore' });
  while (!(await ready(admin))) await new Promise((r) => setTimeout(r, 5));
  const ms = performance.now() - t0;
  const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))[1]) / 1024;
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  return { ms, rss };
}

const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rows = [];
let n = 0;
for (const [name, entry] of [
  ['dist/ (tsc, node_modules)', join(root, 'bin/aigress.js')],
  ['dist-sidecar/ (esbuild bundle)', join(root, 'dist-sidecar/aigress.mjs')],
]) {
  const runs = [];
  for (let k = 0; k < 5; k++) runs.push(await once(entry, n++));
  rows.push(`| ${name} | ${median(runs.map((r) => r.ms)).toFixed(0)} ms | ${median(runs.map((r) => r.rss)).toFixed(1)} MiB |`);
}
rmSync(dir, { recursive: true, force: true });
console.log(`Node ${process.version}, median of 5\n\n| proxy from | spawn → ready | RSS at ready |\n|---|---|---|\n${rows.join('\n')}`);
