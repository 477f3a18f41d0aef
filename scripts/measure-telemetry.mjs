// Measures what telemetry costs the proxy at start: spawn → /readyz 200, and RSS at ready and 2.5 s later (after
// at least one metrics export), with OTLP off, OTLP on (http/protobuf, the default; and http/json), and OTLP plus
// the audit file. Standalone mode, a collector on loopback that accepts everything, variants interleaved run by
// run so machine load drifts evenly, median of 7 each. Prints a Markdown table (docs/metrics.md). A measurement,
// not a test: run it by hand after `npm run build`, with `nice -n 10` on a shared machine.
//   node scripts/measure-telemetry.mjs [runs]
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, get } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout } from 'node:timers';

const root = join(dirname(new URL(import.meta.url).pathname), '..');
const RUNS = Number(process.argv[2] ?? 7);
const { createCA } = await import(join(root, 'dist/shared/pki.js'));
const dir = mkdtempSync(join(tmpdir(), 'aigress-measure-tel-'));
const ca = await createCA('measure CA', 1);
mkdirSync(join(dir, 'ca'));
writeFileSync(join(dir, 'ca', 'tls.crt'), ca.certPem);
writeFileSync(join(dir, 'ca', 'tls.key'), ca.keyPem);
writeFileSync(join(dir, 'policy.yaml'), 'apiVersion: aigress.io/v1alpha1\nkind: EgressPolicy\nmetadata: { name: m }\nspec:\n  providers: [openai, anthropic]\n');

let exports = 0;
const collector = createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    exports++;
    res.writeHead(200).end();
  });
});
await new Promise((r) => collector.listen(0, '127.0.0.1', r));
const endpoint = `http://127.0.0.1:${collector.address().port}`;

const ready = (port) =>
  new Promise((resolve) => {
    get({ host: '127.0.0.1', port, path: '/readyz' }, (r) => {
      r.resume();
      resolve(r.statusCode === 200);
    }).on('error', () => resolve(false));
  });
const rssOf = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024;

const VARIANTS = [
  ['OTLP off', {}, []],
  ['OTLP on (http/protobuf)', { OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_METRIC_EXPORT_INTERVAL: '1000' }, []],
  ['OTLP on (http/json)', { OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_METRIC_EXPORT_INTERVAL: '1000', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' }, []],
  ['OTLP on + audit file', { OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_METRIC_EXPORT_INTERVAL: '1000' }, ['--audit-log', join(dir, 'audit.jsonl')]],
];

async function once(v, i) {
  const [, env, args] = v;
  const admin = 25000 + i;
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('OTEL_') && k !== 'AIGRESS_AUDIT_LOG'));
  const t0 = performance.now();
  const child = spawn(
    process.execPath,
    [join(root, 'bin/aigress.js'), 'proxy', '--policy', join(dir, 'policy.yaml'), '--ca-dir', join(dir, 'ca'), '--bundle-dir', join(dir, `b${i}`), '--capture-port', String(admin + 200), '--admin-port', String(admin), '--log-level', 'error', ...args],
    { stdio: 'ignore', env: { ...clean, ...env } },
  );
  while (!(await ready(admin))) await new Promise((r) => setTimeout(r, 5));
  const ms = performance.now() - t0;
  const rssReady = rssOf(child.pid);
  await new Promise((r) => setTimeout(r, 2_500));
  const rssLater = rssOf(child.pid);
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  return { ms, rssReady, rssLater };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const results = VARIANTS.map(() => []);
let n = 0;
for (let k = 0; k < RUNS; k++) for (const [j, v] of VARIANTS.entries()) results[j].push(await once(v, n++));
collector.close();
rmSync(dir, { recursive: true, force: true });
const rows = VARIANTS.map(([name], j) => {
  const r = results[j];
  return `| ${name} | ${median(r.map((x) => x.ms)).toFixed(0)} ms | ${median(r.map((x) => x.rssReady)).toFixed(1)} MiB | ${median(r.map((x) => x.rssLater)).toFixed(1)} MiB |`;
});
console.log(`Node ${process.version}, ${RUNS} runs per variant (interleaved), medians; the collector took ${exports} exports\n`);
console.log(`| proxy | spawn → ready | RSS at ready | RSS 2.5 s later |\n|---|---|---|---|\n${rows.join('\n')}`);
