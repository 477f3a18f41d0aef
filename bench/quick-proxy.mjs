#!/usr/bin/env node
// Quick local measurement of `aigress proxy` (not a test; the side-by-side benchmark is a later issue).
//   npx tsc -p tsconfig.build.json && node bench/quick-proxy.mjs [--rate 1000] [--seconds 10] [--readyRuns 5]
// Knobs (env): BENCH_EMPTY_PIPELINE=1 (no policy processors), BENCH_PROXY_NODE_OPTIONS="--max-semi-space-size=2"
// (V8 flags for the proxy process), BENCH_PROF=DIR (CPU profile of the proxy process).
// Three processes: a fake provider (HTTPS), the proxy (TLS terminated + TLS originated, real pipeline, info
// logging to /dev/null), and this driver, which sends an open-loop load over keep-alive TLS connections, once
// straight to the provider and once through the proxy, and prints latency percentiles, the difference, the
// proxy's peak RSS, and time-to-ready of the CLI (spawn → /readyz 200).

import { fork, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { createServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Buffer } from 'node:buffer';
import { setInterval } from 'node:timers';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

const ROOT = join(fileURLToPath(import.meta.url), '../..');
const dist = (p) => join(ROOT, 'dist', p);
const args = Object.fromEntries(
  process.argv.slice(2).flatMap((a, i, all) => (a.startsWith('--') ? [[a.slice(2), all[i + 1]]] : [])),
);
const HOST = 'api.openai.com';
const RESPONSE = JSON.stringify({
  id: 'chatcmpl-bench',
  object: 'chat.completion',
  model: 'gpt-4o-2024-08-06',
  choices: [{ index: 0, message: { role: 'assistant', content: 'x'.repeat(300) }, finish_reason: 'stop' }],
  usage: { prompt_tokens: 20, completion_tokens: 80, total_tokens: 100 },
});
const REQUEST = JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'y'.repeat(400) }] });

async function upstreamRole(dir) {
  const server = createServer(
    { cert: readFileSync(join(dir, 'leaf.crt')), key: readFileSync(join(dir, 'leaf.key')), keepAliveTimeout: 120_000 },
    (req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(RESPONSE) });
        res.end(RESPONSE);
      });
    },
  );
  let tlsConnections = 0;
  server.on('secureConnection', () => tlsConnections++);
  process.on('message', (m) => m === 'stats' && process.send({ tlsConnections, cpu: process.cpuUsage() }));
  server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }));
}

async function proxyRole(dir, upstreamPort) {
  const { startProxy } = await import(dist('sidecar/proxy/proxy.js'));
  const { FilePolicySource, LocalCaCertificateSource } = await import(dist('sidecar/proxy/sources/standalone.js'));
  const { pino } = await import('pino');
  // As `aigress proxy` logs: info level, one line per request, written in 4 KiB batches.
  const logger = pino({ level: 'info' }, pino.destination({ dest: '/dev/null', sync: false, minLength: 4096 }));
  const handle = await startProxy({
    certificates: new LocalCaCertificateSource(join(dir, 'ca')),
    policy: new FilePolicySource(join(dir, 'policy.yaml')),
    bundleDir: join(dir, 'bundle'),
    capturePort: 0,
    adminPort: 0,
    listenAddresses: ['127.0.0.1'],
    adminAddress: '127.0.0.1',
    resolve: { [HOST]: { host: '127.0.0.1', port: upstreamPort } },
    upstreamCa: readFileSync(join(dir, 'root.crt'), 'utf8'),
    logger,
    ...(process.env.BENCH_EMPTY_PIPELINE ? { buildPipeline: () => ({ processors: [], close: async () => {} }) } : {}),
  });
  await handle.ready;
  let peakRss = 0;
  let cpuAtReset = process.cpuUsage();
  setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 100).unref();
  process.once('SIGINT', () => process.exit(0)); // lets --cpu-prof write its profile
  process.on('message', (m) => {
    if (m === 'rss') process.send({ rss: process.memoryUsage().rss, peakRss, cpu: process.cpuUsage(cpuAtReset), mem: process.memoryUsage() });
    if (m === 'reset') peakRss = 0;
    if (m === 'reset-cpu') {
      cpuAtReset = process.cpuUsage();
      process.send({ pid: process.pid });
    }
  });
  process.send({ port: handle.capturePort, adminPort: handle.adminPort });
}

function child(role, ...rest) {
  const execArgv = [];
  if (role === 'proxy' && process.env.BENCH_PROF) execArgv.push('--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROF}`);
  if (role === 'proxy' && process.env.BENCH_PROXY_NODE_OPTIONS) execArgv.push(...process.env.BENCH_PROXY_NODE_OPTIONS.split(' '));
  const p = fork(fileURLToPath(import.meta.url), ['--role', role, ...rest], { stdio: 'inherit', execArgv });
  return new Promise((resolve) => p.once('message', (m) => resolve({ proc: p, ...m })));
}

function percentile(sorted, q) {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/** Open-loop load: `rate` requests per second for `seconds`, each timed from send to the last body byte. */
async function load(port, caPem, rate, seconds) {
  const { Pool, buildConnector } = await import('undici');
  const { createSecureContext, rootCertificates } = await import('node:tls');
  const base = buildConnector({ secureContext: createSecureContext({ ca: [...rootCertificates, caPem] }) });
  const pool = new Pool(`https://${HOST}`, {
    connections: 32,
    connect: (o, cb) => base({ ...o, hostname: '127.0.0.1', port: String(port), servername: HOST }, cb),
    keepAliveTimeout: 60_000,
  });
  const dispatch = () => {
    const t0 = performance.now();
    return pool
      .request({ method: 'POST', path: '/v1/chat/completions', headers: { host: HOST, 'content-type': 'application/json', authorization: 'Bearer sk-bench' }, body: REQUEST })
      .then(async (r) => {
        await r.body.arrayBuffer();
        if (r.statusCode !== 200) throw new Error(`status ${r.statusCode}`);
        return performance.now() - t0;
      });
  };
  // Warm up connections, TLS sessions, the JIT and the proxy's leaf certificate.
  for (let i = 0; i < 10; i++) await Promise.all(Array.from({ length: 32 }, dispatch));
  const total = rate * seconds;
  const latencies = [];
  const pending = [];
  let errors = 0;
  const start = performance.now();
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    pending.push(dispatch().then((ms) => latencies.push(ms), () => errors++));
  }
  await Promise.all(pending);
  const elapsed = (performance.now() - start) / 1000;
  await pool.close();
  latencies.sort((a, b) => a - b);
  return { n: latencies.length, errors, achievedRps: Math.round(latencies.length / elapsed), p50: percentile(latencies, 0.5), p90: percentile(latencies, 0.9), p99: percentile(latencies, 0.99), max: latencies.at(-1) };
}

function httpStatus(port, path) {
  return new Promise((resolve) => {
    get({ host: '127.0.0.1', port, path }, (r) => {
      r.resume();
      resolve(r.statusCode);
    }).on('error', () => resolve(0));
  });
}

/**
 * spawn → /readyz 200, as the kubelet's startup probe sees it: through bin/aigress.js (the whole CLI, every
 * subcommand's imports included) and through the proxy's own entry point alone.
 */
async function timeToReady(dir, runs, viaCli) {
  const times = [];
  for (let i = 0; i < runs; i++) {
    const adminPort = 25_000 + Math.floor(Math.random() * 20_000);
    const flags = ['--policy', join(dir, 'policy.yaml'), '--ca-dir', join(dir, 'ca'), '--bundle-dir', join(dir, `bundle-${i}`), '--capture-port', '0', '--admin-port', String(adminPort), '--log-level', 'warn'];
    const argv = viaCli
      ? [join(ROOT, 'bin/aigress.js'), 'proxy', ...flags]
      : ['--input-type=module', '-e', `const { Command } = await import('commander'); const { registerProxy } = await import(${JSON.stringify(dist('sidecar/proxy/cli.js'))}); const p = new Command(); registerProxy(p); await p.parseAsync(${JSON.stringify(['proxy', ...flags])}, { from: 'user' });`];
    const t0 = performance.now();
    const p = spawn(process.execPath, argv, { stdio: 'ignore', cwd: ROOT });
    while ((await httpStatus(adminPort, '/readyz')) !== 200) {
      if (performance.now() - t0 > 10_000) throw new Error('proxy did not become ready in 10 s');
      await sleep(2);
    }
    times.push(performance.now() - t0);
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGTERM');
    await exited;
  }
  times.sort((a, b) => a - b);
  return { runs, min: times[0], median: percentile(times, 0.5), max: times.at(-1) };
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'aigress-bench-'));
  const { createCA, issueLeaf, loadCA } = await import(dist('shared/pki.js'));
  const root = await createCA('bench upstream root');
  const leaf = await issueLeaf(await loadCA(root.certPem, root.keyPem), { dnsNames: [HOST] });
  const ca = await createCA('bench aigress CA');
  mkdirSync(join(dir, 'ca'));
  writeFileSync(join(dir, 'root.crt'), root.certPem);
  writeFileSync(join(dir, 'leaf.crt'), leaf.certPem);
  writeFileSync(join(dir, 'leaf.key'), leaf.keyPem);
  writeFileSync(join(dir, 'ca', 'ca.crt'), ca.certPem);
  writeFileSync(join(dir, 'ca', 'ca.key'), ca.keyPem);
  writeFileSync(join(dir, 'policy.yaml'), 'apiVersion: aigress.io/v1alpha1\nkind: EgressPolicy\nmetadata: { name: bench }\nspec:\n  providers: [openai]\n');

  const rate = Number(args.rate ?? 1000);
  const seconds = Number(args.seconds ?? 10);
  const upstream = await child('upstream', dir);
  const proxy = await child('proxy', dir, String(upstream.port));
  const rssIdle = await new Promise((r) => (proxy.proc.send('rss'), proxy.proc.once('message', r)));
  proxy.proc.send('reset'); // peak RSS from here: the direct run (the proxy idle, loading what it loads after ready) and the proxied one

  const stats = () => new Promise((r) => (upstream.proc.send('stats'), upstream.proc.once('message', r)));
  const direct = await load(upstream.port, root.certPem, rate, seconds);
  const s0 = await stats();
  const c0 = s0.tlsConnections;
  // CPU from here: the proxied run alone (its warm-up included), not the post-ready loading during the direct run.
  await new Promise((r) => (proxy.proc.send('reset-cpu'), proxy.proc.once('message', r)));
  const proxied = await load(proxy.port, ca.certPem, rate, seconds);
  const s1 = await stats();
  const c1 = s1.tlsConnections;
  const upstreamCpuUs = s1.cpu.user + s1.cpu.system - (s0.cpu.user + s0.cpu.system);
  const captured = await new Promise((resolve) => get({ host: '127.0.0.1', port: proxy.adminPort, path: '/metrics' }, (r) => {
    let b = '';
    r.on('data', (c) => (b += c));
    r.on('end', () => resolve(/aigress_connections_total\{route="mediated"\} (\d+)/.exec(b)?.[1]));
  }));
  const rss = await new Promise((r) => (proxy.proc.send('rss'), proxy.proc.once('message', r)));
  upstream.proc.kill();
  proxy.proc.disconnect();
  proxy.proc.kill('SIGINT');
  const ready = await timeToReady(dir, Number(args.readyRuns ?? 5), true);
  const readyAlone = await timeToReady(dir, Number(args.readyRuns ?? 5), false);

  const f = (x) => x.toFixed(3);
  const mib = (b) => (b / 1048576).toFixed(1);
  console.log(`load: ${rate} req/s for ${seconds} s, POST ${REQUEST.length} B → ${RESPONSE.length} B JSON, TLS on both sides, keep-alive`);
  console.log('               n     err   rps    p50 ms  p90 ms  p99 ms  max ms');
  for (const [name, r] of [['direct', direct], ['via proxy', proxied]]) {
    console.log(`${name.padEnd(12)} ${String(r.n).padStart(6)} ${String(r.errors).padStart(5)} ${String(r.achievedRps).padStart(5)}   ${f(r.p50)}   ${f(r.p90)}   ${f(r.p99)}   ${f(r.max)}`);
  }
  console.log(`added latency: p50 ${f(proxied.p50 - direct.p50)} ms, p90 ${f(proxied.p90 - direct.p90)} ms, p99 ${f(proxied.p99 - direct.p99)} ms`);
  console.log(`connections during the proxied run: app → proxy ${captured}, direct run app → provider ${c0}, proxy → provider ${c1 - c0}`);
  const cpuUs = rss.cpu.user + rss.cpu.system;
  console.log(`CPU per request (user+system, the proxied run incl. its 320 warm-up requests): proxy ${(cpuUs / (proxied.n + 320)).toFixed(0)} µs, fake provider ${(upstreamCpuUs / (proxied.n + 320)).toFixed(0)} µs (one TLS server side, for scale)`);
  console.log(`proxy RSS: idle after ready ${mib(rssIdle.rss)} MiB, peak under load ${mib(rss.peakRss)} MiB, after load ${mib(rss.rss)} MiB`);
  const m = rss.mem;
  console.log(`proxy memory after load: heapTotal ${mib(m.heapTotal)} MiB, heapUsed ${mib(m.heapUsed)} MiB, external ${mib(m.external)} MiB, arrayBuffers ${mib(m.arrayBuffers)} MiB; idle: heapTotal ${mib(rssIdle.mem.heapTotal)} heapUsed ${mib(rssIdle.mem.heapUsed)}`);
  const r = (x) => `min ${x.min.toFixed(0)} ms, median ${x.median.toFixed(0)} ms, max ${x.max.toFixed(0)} ms`;
  console.log(`time to ready, spawn → /readyz 200 (${ready.runs} runs): bin/aigress.js proxy ${r(ready)}; proxy entry alone ${r(readyAlone)}`);
  const bare = performance.now();
  await new Promise((res) => spawn(process.execPath, ['-e', '0']).once('exit', res));
  console.log(`(for scale: \`node -e 0\` takes ${(performance.now() - bare).toFixed(0)} ms here now)`);
}

if (args.role === 'upstream') await upstreamRole(process.argv[4]);
else if (args.role === 'proxy') await proxyRole(process.argv[4], Number(process.argv[5]));
else await main();
