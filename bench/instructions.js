#!/usr/bin/env node
// `npm run bench:instructions`: the proxy's cost per request in CPU instructions, a figure that does not move with
// the machine's load (CPU time on a shared 2-core machine moves by ±50 %; instructions by well under 1 %).
//
//   node bench/instructions.js [--requests N] [--warmup W] [--rounds R] [--concurrency C] [--body BYTES]
//                              [--syscalls] [--profile DIR] [--keep]
//
// The real `aigress proxy` process (bin/aigress.js, standalone: --policy with `providers: [openai]`, --ca-dir,
// info logging to a file) runs under valgrind's callgrind with instrumentation off while it starts. The fake
// provider (bench/upstream.js) and the client (undici, keep-alive TLS with SNI api.openai.com, verifying the
// proxy's chain) run in processes of their own, in a network namespace whose /etc/hosts sends api.openai.com to
// 127.0.0.1, as `npm run bench` does. After W warm-up requests (JIT, the leaf, undici loaded, connections open)
// instrumentation goes on, one round is sent and thrown away, an idle round (5 s, no requests) measures what the
// proxy's timers cost per second; then each round sends N 1 KiB chat requests (1 KiB answers, one at a time on one
// keep-alive connection) and dumps the counters: instructions per request = (the round's instructions − the idle
// rate × the round's duration) / N. Every thread of the proxy's process is counted (V8 runs single-threaded here,
// --single-threaded --predictable-gc-schedule, so compiling and GC happen on the main thread and repeat), user
// space only (the kernel's share of a syscall is not counted: --syscalls counts the syscalls themselves, in a run
// without valgrind). The lowest round and the median are printed: a major GC lands in some rounds only.
// Rounds of the same build agree within ~3 %; between runs at different machine load, ~5 %: compare builds in
// runs made side by side. ~5 minutes with the defaults (4 rounds of 1000 after 3000 warm-up requests).
// --profile DIR: a `node --cpu-prof` profile of the same workload (no valgrind), summarised by layer.
// BENCH_PROXY_NODE_OPTIONS="--flag …": more node/V8 flags for the proxy process (e.g. --trace-deopt).

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, openSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { createClient, requestBody } from './load.js';
import { policyYaml, waitForStatus } from './peers.js';
import { HOST, writeCertificates } from './pki.js';
import { summarise } from './profile.js';

const ROOT = join(fileURLToPath(import.meta.url), '../..');
const CAPTURE_PORT = 14101;
const ADMIN_PORT = 14120;
const IDLE_MS = 5_000;

function parseArgs(argv) {
  const a = { requests: 1000, warmup: 3000, rounds: 4, concurrency: 1, body: 1024, syscalls: false, profile: undefined, inside: false, dir: undefined };
  const num = (k, v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) {
      console.error(`bench:instructions: ${k}: expected a whole number ≥ 0, got '${v}'`);
      process.exit(2);
    }
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    if (k === '--requests') a.requests = num(k, argv[++i]);
    else if (k === '--warmup') a.warmup = num(k, argv[++i]);
    else if (k === '--rounds') a.rounds = num(k, argv[++i]);
    else if (k === '--concurrency') a.concurrency = Math.max(1, num(k, argv[++i]));
    else if (k === '--body') a.body = num(k, argv[++i]);
    else if (k === '--syscalls') a.syscalls = true;
    else if (k === '--profile') a.profile = argv[++i];
    else if (k === '--keep') a.keep = true;
    else if (k === '--inside') a.inside = true;
    else if (k === '--dir') a.dir = argv[++i];
    else if (k === '--help' || k === '-h') {
      console.log('usage: node bench/instructions.js [--requests N] [--warmup W] [--rounds R] [--concurrency C] [--body BYTES] [--syscalls] [--profile DIR] [--keep]');
      process.exit(0);
    } else {
      console.error(`bench:instructions: unknown argument '${k}' (see --help)`);
      process.exit(2);
    }
  }
  return a;
}

const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

async function outside(args) {
  if (process.getuid?.() !== 0) {
    console.error('bench:instructions: needs root: the proxy runs in its own network namespace (ip netns), as `npm run bench` does');
    process.exit(2);
  }
  if (!existsSync(join(ROOT, 'dist/sidecar/proxy/run.js'))) {
    console.error('bench:instructions: dist/ missing: run `npm run -s build` first (npm run bench:instructions does)');
    process.exit(2);
  }
  for (const [cmd, pkg] of [['valgrind', 'valgrind'], ['ip', 'iproute2'], ...(args.syscalls ? [['strace', 'strace']] : [])]) {
    if (has(cmd)) continue;
    console.log(`bench:instructions: installing ${pkg} from Debian…`);
    spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', pkg], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  }
  const ns = `aigress-instr-${process.pid}`;
  const dir = mkdtempSync(join(tmpdir(), 'aigress-instr-'));
  mkdirSync(`/etc/netns/${ns}`, { recursive: true });
  writeFileSync(`/etc/netns/${ns}/hosts`, `127.0.0.1 localhost\n127.0.0.1 ${HOST}\n`);
  let code = 1;
  try {
    const sh = (...a) => {
      const r = spawnSync('ip', a, { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`ip ${a.join(' ')}: ${r.stderr.trim()}`);
    };
    sh('netns', 'add', ns);
    sh('netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up');
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, fileURLToPath(import.meta.url), '--inside', '--dir', dir, ...process.argv.slice(2)], { stdio: 'inherit' });
    const stop = () => child.kill('SIGTERM');
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    code = await new Promise((r) => child.once('exit', (c) => r(c ?? 1)));
  } finally {
    spawnSync('ip', ['netns', 'del', ns]);
    rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
    if (code === 0 && !args.keep) rmSync(dir, { recursive: true, force: true });
    else console.error(`bench:instructions: logs${args.keep ? ' and callgrind dumps' : ''} kept in ${dir}`);
  }
  process.exit(code);
}

/** Sends `n` requests, `concurrency` at a time; every one must be a 200. */
async function send(client, n, concurrency, body) {
  let next = 0;
  const worker = async () => {
    while (next < n) {
      next++;
      const r = await client.pool.request({ method: 'POST', path: client.path, headers: client.headers, body });
      await r.body.arrayBuffer();
      if (r.statusCode !== 200) throw new Error(`status ${r.statusCode}`);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

function callgrindControl(pid, flag) {
  const r = spawnSync('callgrind_control', [flag, String(pid)], { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`callgrind_control ${flag} ${pid}: ${(r.stderr || r.stdout).trim()}`);
}

/** The newest callgrind dump's total instruction count (`summary:` / `totals:` line). */
function lastDumpTotal(dir, seen) {
  const files = readdirSync(dir).filter((f) => f.startsWith('callgrind.out') && !seen.has(f));
  if (files.length !== 1) throw new Error(`expected one new callgrind dump in ${dir}, found ${files.length}`);
  seen.add(files[0]);
  const text = readFileSync(join(dir, files[0]), 'utf8');
  const m = /^(?:summary|totals):\s*(\d+)/m.exec(text);
  if (!m) throw new Error(`no totals in ${files[0]}`);
  return Number(m[1]);
}

async function inside(args) {
  const dir = args.dir;
  await writeCertificates(ROOT, dir);
  writeFileSync(join(dir, 'policy.yaml'), policyYaml());
  const upstream = spawn(process.execPath, [join(ROOT, 'bench/upstream.js'), dir, '443'], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((resolve, reject) => {
    upstream.stdout.once('data', resolve);
    upstream.once('exit', (c) => reject(new Error(`fake provider exited with ${c}`)));
  });
  const cgDir = join(dir, 'callgrind');
  mkdirSync(cgDir, { recursive: true });
  const measureInstructions = !args.syscalls && args.profile === undefined;
  // Under callgrind, V8's background threads (concurrent compilers, parallel GC) and its time-driven GC
  // schedule make counts drift by ±50 % between rounds: with them off the same work is done on the main thread
  // and a round's count repeats.
  const nodeArgs = args.profile !== undefined ? ['--cpu-prof', `--cpu-prof-dir=${args.profile}`] : measureInstructions ? ['--single-threaded', '--predictable-gc-schedule'] : [];
  const proxyArgv = [
    ...nodeArgs,
    ...(process.env.BENCH_PROXY_NODE_OPTIONS ? process.env.BENCH_PROXY_NODE_OPTIONS.split(' ') : []),
    join(ROOT, 'bin/aigress.js'),
    'proxy',
    '--policy', join(dir, 'policy.yaml'),
    '--ca-dir', join(dir, 'ca'),
    '--bundle-dir', join(dir, 'bundle'),
    '--capture-port', String(CAPTURE_PORT),
    '--admin-port', String(ADMIN_PORT),
    '--listen-address', '127.0.0.1',
    '--log-level', 'info',
  ];
  const [cmd, argv] = measureInstructions
    ? ['valgrind', ['--tool=callgrind', '--instr-atstart=no', `--callgrind-out-file=${join(cgDir, 'callgrind.out.%p')}`, process.execPath, ...proxyArgv]]
    : [process.execPath, proxyArgv];
  const log = openSync(join(dir, 'proxy.log'), 'a');
  const env = { ...process.env, NODE_EXTRA_CA_CERTS: join(dir, 'upstream-root.crt') };
  const proxy = spawn(cmd, argv, { cwd: ROOT, stdio: ['ignore', log, log], env });
  const t0 = performance.now();
  const result = { node: process.version, requests: args.requests, warmup: args.warmup, concurrency: args.concurrency, bodyBytes: args.body, rounds: [] };
  try {
    await waitForStatus(ADMIN_PORT, '/readyz', measureInstructions ? 300_000 : 30_000, 20, proxy);
    const client = await createClient({ port: CAPTURE_PORT, tls: true, ca: readFileSync(join(dir, 'ca/ca.crt'), 'utf8') }, args.concurrency);
    const body = requestBody(args.body, 1024);
    await send(client, args.warmup, args.concurrency, body);
    if (measureInstructions) {
      // callgrind creates its output file at start-up (the final dump goes there): only later dumps count.
      const seen = new Set(readdirSync(cgDir));
      callgrindControl(proxy.pid, '--instr=on');
      // The first round under instrumentation counts ~25 % more than the ones after it, every time: it is sent
      // and thrown away, then the counters are zeroed.
      await send(client, args.requests, args.concurrency, body);
      // What the proxy does with no request at all (timers: the event-loop-delay monitor of the default metrics,
      // keep-alive and sweep timers) runs per second, not per request, and valgrind makes a round last ~50× longer,
      // so the machine's load moved a round's count by up to 20 %: an idle round measures that rate, and each
      // round's figure is net of it for the round's duration.
      callgrindControl(proxy.pid, '--zero');
      const idleStart = performance.now();
      await sleep(IDLE_MS);
      callgrindControl(proxy.pid, '--dump');
      const idlePerSecond = lastDumpTotal(cgDir, seen) / ((performance.now() - idleStart) / 1000);
      result.idleInstructionsPerSecond = Math.round(idlePerSecond);
      for (let r = 0; r < args.rounds; r++) {
        const start = performance.now();
        await send(client, args.requests, args.concurrency, body);
        await sleep(200); // let the last log lines and onEnd work of the round run inside it
        callgrindControl(proxy.pid, '--dump');
        const seconds = (performance.now() - start) / 1000;
        const total = lastDumpTotal(cgDir, seen);
        const net = total - idlePerSecond * seconds;
        result.rounds.push({ instructions: total, seconds: Math.round(seconds * 10) / 10, perRequest: Math.round(net / Math.max(1, args.requests)), grossPerRequest: Math.round(total / Math.max(1, args.requests)) });
      }
      const sorted = result.rounds.map((r) => r.perRequest).sort((a, b) => a - b);
      result.medianPerRequest = sorted[Math.floor(sorted.length / 2)];
      // A major GC lands in some rounds and not others (+100–200k per request in a 500-request round): the
      // lowest round is the steadiest figure to compare builds by, the median the one that includes GC.
      result.minPerRequest = sorted[0];
    } else if (args.syscalls) {
      const out = join(dir, 'strace.txt');
      const st = spawn('strace', ['-f', '-c', '-o', out, '-p', String(proxy.pid)], { stdio: 'ignore' });
      await sleep(1000);
      await send(client, args.requests, args.concurrency, body);
      await sleep(200);
      st.kill('SIGINT');
      await new Promise((r) => st.once('exit', r));
      const calls = {};
      for (const line of readFileSync(out, 'utf8').split('\n')) {
        const m = /^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$/.exec(line);
        if (m && m[2] !== 'total') calls[m[2]] = Math.round((100 * Number(m[1])) / args.requests) / 100;
      }
      result.syscallsPerRequest = Object.fromEntries(Object.entries(calls).sort((x, y) => y[1] - x[1]));
      result.syscallsTotalPerRequest = Math.round(100 * Object.values(calls).reduce((s, v) => s + v, 0)) / 100;
    } else {
      const skipUs = (performance.now() - t0) * 1000;
      await send(client, args.requests, args.concurrency, body);
      result.profileSkipUs = Math.round(skipUs);
    }
    await client.pool.close();
  } finally {
    proxy.kill('SIGTERM');
    await Promise.race([new Promise((r) => proxy.once('exit', r)), sleep(30_000).then(() => proxy.kill('SIGKILL'))]);
    upstream.kill('SIGTERM');
  }
  if (args.profile !== undefined) {
    await sleep(300);
    const files = readdirSync(args.profile).filter((f) => f.endsWith('.cpuprofile'));
    if (files.length > 0) {
      const newest = files.map((f) => join(args.profile, f)).sort().at(-1);
      result.profile = { file: newest, ...summarise(newest, { skipUs: result.profileSkipUs, top: 25 }) };
    }
  }
  console.log(JSON.stringify(result, null, 2));
}

const args = parseArgs(process.argv.slice(2));
if (args.inside) await inside(args);
else await outside(args);
