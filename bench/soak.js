#!/usr/bin/env node
// `npm run soak`: N requests (default 1,000,000; JSON answers and SSE streams mixed) through one standalone
// `aigress proxy` process to a fake TLS provider, sampling the proxy's RSS, V8 heap, open fds and active handles
// over time. Writes the curve (CSV) and a summary (JSON) to bench/results/soak/ and exits non-zero when it fails:
//
//   - any request failed (status, body, stream shape, connection error);
//   - RSS drift ≥ 5 %: the RSS floor (lowest sample: V8's heap is a sawtooth, and where a sample lands in it
//     is chance; the trough after each collection is what grows when something leaks) of the last 10 % of
//     the samples against that of the first 10 % after warm-up;
//   - handle or fd growth: with the load stopped and the client's connections closed, the proxy holds more
//     active handles or fds after the run than it did after warm-up (a slack of HANDLE_SLACK for the upstream
//     keep-alive pool, whose size depends on timing).
//
//   node bench/soak.js [--requests N] [--concurrency C] [--stream-every K] [--fresh-every F] [--warmup N]
//                      [--sample-ms MS] [--log-level LEVEL] [--no-write]
//   node bench/soak.js --curve bench/results/soak/FILE.csv    (a run's curve by tenths, as a Markdown table)
//
// Like `npm run bench`, it runs inside a network namespace of its own whose /etc/hosts sends api.openai.com to
// 127.0.0.1, so the real CLI process resolves the provider by name (needs root, as the e2e suite does). The
// fake provider is a child process; the load runs in this process; the proxy's figures come from its own
// /metrics (prom-client's process and nodejs collectors) and /proc.

import { Buffer } from 'node:buffer';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, openSync } from 'node:fs';
import { get } from 'node:http';
import { createServer } from 'node:https';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { clearInterval, setImmediate, setInterval } from 'node:timers';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { HOST, writeCertificates } from './pki.js';
import { waitForStatus } from './peers.js';

const ROOT = join(fileURLToPath(import.meta.url), '../..');
const PORTS = { upstream: 443, capture: 14001, admin: 14020 };
const SSE_EVENTS = 20;
const DRIFT_LIMIT = 0.05;
const HANDLE_SLACK = 4;

function parseArgs(argv) {
  const a = { requests: 1_000_000, concurrency: 16, streamEvery: 4, freshEvery: 100, warmup: undefined, sampleMs: 1_000, logLevel: 'info', write: true, inside: false, upstream: undefined, state: undefined };
  const num = (k, v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) {
      console.error(`soak: ${k}: expected a whole number ≥ 1, got '${v}'`);
      process.exit(2);
    }
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    if (k === '--requests') a.requests = num(k, argv[++i]);
    else if (k === '--concurrency') a.concurrency = num(k, argv[++i]);
    else if (k === '--stream-every') a.streamEvery = num(k, argv[++i]);
    else if (k === '--fresh-every') a.freshEvery = num(k, argv[++i]);
    else if (k === '--warmup') a.warmup = num(k, argv[++i]);
    else if (k === '--sample-ms') a.sampleMs = num(k, argv[++i]);
    else if (k === '--log-level') a.logLevel = argv[++i];
    else if (k === '--no-write') a.write = false;
    else if (k === '--inside') a.inside = true;
    else if (k === '--state') a.state = argv[++i];
    else if (k === '--upstream') a.upstream = argv[++i];
    else if (k === '--curve') a.curve = argv[++i];
    else if (k === '--help' || k === '-h') {
      console.log('usage: node bench/soak.js [--requests N] [--concurrency C] [--stream-every K] [--fresh-every F] [--warmup N] [--sample-ms MS] [--log-level LEVEL] [--no-write]');
      console.log('       node bench/soak.js --curve bench/results/soak/FILE.csv   (the curve by tenths of the run, as a Markdown table)');
      process.exit(0);
    } else {
      console.error(`soak: unknown argument '${k}' (see --help)`);
      process.exit(2);
    }
  }
  // Warm-up: JIT, pools, caches and V8's heap sizing settle; 5 % of the run, at least 1,000 requests.
  a.warmup ??= Math.min(a.requests, Math.max(1_000, Math.round(a.requests * 0.05)));
  return a;
}

const log = (m) => console.log(`soak: ${m}`);

// ---- the fake provider (a child process: `node bench/soak.js --upstream DIR`) -------------------------------

function jsonAnswer() {
  return Buffer.from(
    JSON.stringify({
      id: 'chatcmpl-soak',
      object: 'chat.completion',
      created: 1_700_000_000,
      model: 'gpt-4o-2024-08-06',
      choices: [{ index: 0, message: { role: 'assistant', content: 'x'.repeat(800) }, finish_reason: 'stop' }],
      usage: { prompt_tokens: 20, completion_tokens: 80, total_tokens: 100 },
    }),
  );
}

function sseBody() {
  const ev = (o) => `data: ${JSON.stringify(o)}\n\n`;
  const parts = [];
  for (let i = 0; i < SSE_EVENTS; i++) parts.push(ev({ id: 'chatcmpl-soak', object: 'chat.completion.chunk', model: 'gpt-4o-2024-08-06', choices: [{ index: 0, delta: { content: `tok${i} ` }, finish_reason: i === SSE_EVENTS - 1 ? 'stop' : null }] }));
  parts.push(ev({ id: 'chatcmpl-soak', object: 'chat.completion.chunk', model: 'gpt-4o-2024-08-06', choices: [], usage: { prompt_tokens: 20, completion_tokens: SSE_EVENTS, total_tokens: 20 + SSE_EVENTS } }));
  parts.push('data: [DONE]\n\n');
  return parts;
}

function runUpstream(dir) {
  const answer = jsonAnswer();
  const events = sseBody();
  const server = createServer({ cert: readFileSync(join(dir, 'upstream.crt')), key: readFileSync(join(dir, 'upstream.key')), keepAliveTimeout: 120_000, requestTimeout: 0 }, (req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      if (Buffer.concat(chunks).includes('"stream":true')) {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
        // Events on separate turns of the loop, so the proxy relays a stream, not one buffer.
        let i = 0;
        const next = () => {
          if (res.destroyed) return;
          if (i === events.length - 1) return void res.end(events[i]);
          res.write(events[i++]);
          setImmediate(next);
        };
        next();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': answer.length });
      res.end(answer);
    });
  });
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 130_000;
  server.listen(PORTS.upstream, '127.0.0.1', () => process.stdout.write('listening\n'));
  process.on('SIGTERM', () => process.exit(0));
}

// ---- the proxy's figures -------------------------------------------------------------------------------------

function metrics(port) {
  return new Promise((resolve) => {
    const req = get({ host: '127.0.0.1', port, path: '/metrics', timeout: 10_000 }, (r) => {
      let b = '';
      r.on('data', (c) => (b += c));
      r.on('end', () => resolve(b));
    });
    req.on('error', () => resolve(''));
    req.on('timeout', () => req.destroy());
  });
}

const metric = (text, name) => {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
};

function procFigures(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? NaN);
    return { rssMb: kb('VmRSS') / 1024, hwmMb: kb('VmHWM') / 1024, cpuS: (Number(stat[11]) + Number(stat[12])) / 100 };
  } catch {
    return { rssMb: NaN, hwmMb: NaN, cpuS: NaN };
  }
}

async function sample(pid, t0, done, errors) {
  const text = await metrics(PORTS.admin);
  const p = procFigures(pid);
  return {
    t: Math.round(performance.now() - t0) / 1000,
    requests: done,
    errors,
    rssMb: Math.round(p.rssMb * 10) / 10,
    heapUsedMb: Math.round((metric(text, 'nodejs_heap_size_used_bytes') / 2 ** 20) * 10) / 10,
    heapTotalMb: Math.round((metric(text, 'nodejs_heap_size_total_bytes') / 2 ** 20) * 10) / 10,
    handles: metric(text, 'nodejs_active_handles_total'),
    fds: metric(text, 'process_open_fds'),
    cpuS: p.cpuS,
  };
}

// ---- the load ------------------------------------------------------------------------------------------------

async function makeClient(ca, connections) {
  const { Pool, Client, buildConnector } = await import('undici');
  const connector = buildConnector({ ca, timeout: 10_000 });
  const connect = (o, cb) => connector({ ...o, hostname: '127.0.0.1', port: String(PORTS.capture), servername: HOST }, cb);
  const opts = { keepAliveTimeout: 60_000, headersTimeout: 60_000, bodyTimeout: 60_000, connect };
  return { pool: () => new Pool(`https://${HOST}`, { ...opts, connections }), fresh: () => new Client(`https://${HOST}`, { ...opts, pipelining: 0 }) };
}

const headers = { 'content-type': 'application/json', authorization: 'Bearer sk-soak', host: HOST };
const jsonBody = JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hello '.repeat(150) }] });
const streamBody = JSON.stringify({ model: 'gpt-4o', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'hello '.repeat(150) }] });

/** One request; throws with what was wrong, so every failure is counted and the first few are shown. */
async function one(dispatcher, stream) {
  const r = await dispatcher.request({ method: 'POST', path: '/v1/chat/completions', headers, body: stream ? streamBody : jsonBody });
  const text = await r.body.text();
  if (r.statusCode !== 200) throw new Error(`status ${r.statusCode}: ${text.slice(0, 160)}`);
  if (stream) {
    const events = text.split('\n\n').filter((e) => e.startsWith('data: '));
    if (events.length !== SSE_EVENTS + 2 || events.at(-1) !== 'data: [DONE]') throw new Error(`stream of ${events.length} events, last '${events.at(-1)?.slice(0, 40)}'`);
  } else if (JSON.parse(text).usage?.total_tokens !== 100) throw new Error('JSON answer without its usage');
}

/** Closed loop: `concurrency` workers until `count` requests are done; every freshEvery-th on a new connection. */
async function drive(client, a, count, state) {
  const pool = client.pool();
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      const stream = i % a.streamEvery === 0;
      const fresh = i % a.freshEvery === a.freshEvery - 1;
      const d = fresh ? client.fresh() : pool;
      try {
        await one(d, stream);
      } catch (err) {
        state.errors++;
        if (state.firstErrors.length < 10) state.firstErrors.push(`#${state.done}: ${err.code ?? ''} ${err.message}`.trim());
      } finally {
        state.done++;
        if (fresh) await d.close();
      }
    }
  };
  await Promise.all(Array.from({ length: a.concurrency }, worker));
  await pool.close();
}

/** The proxy idle: client connections closed, figures given a moment to settle (the lowest of a few samples). */
async function idleFigures(pid, t0, state) {
  await sleep(2_000);
  const got = [];
  for (let i = 0; i < 5; i++) {
    got.push(await sample(pid, t0, state.done, state.errors));
    await sleep(500);
  }
  return { handles: Math.min(...got.map((s) => s.handles)), fds: Math.min(...got.map((s) => s.fds)), rssMb: got.at(-1).rssMb, heapUsedMb: Math.min(...got.map((s) => s.heapUsedMb)) };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.floor(s.length / 2)];
};

/** The run after warm-up in tenths: per tenth the RSS floor and median, the heap floor, fds and handles. */
function tenths(curve) {
  const main = curve.filter((s) => s.phase === 'main' && Number.isFinite(s.rssMb));
  const n = Math.max(1, Math.floor(main.length / 10));
  const out = [];
  for (let i = 0; i + n <= main.length && out.length < 10; i += n) {
    const part = main.slice(i, i + n);
    out.push({
      fromRequest: part[0].requests,
      rssFloorMb: Math.min(...part.map((s) => s.rssMb)),
      rssMedianMb: median(part.map((s) => s.rssMb)),
      heapFloorMb: Math.min(...part.map((s) => s.heapUsedMb)),
      fdsMax: Math.max(...part.map((s) => s.fds)),
      handlesMax: Math.max(...part.map((s) => s.handles)),
    });
  }
  return out;
}

function printCurve(file) {
  const [head, ...lines] = readFileSync(file, 'utf8').trim().split('\n');
  const cols = head.split(',');
  const curve = lines.map((l) => Object.fromEntries(l.split(',').map((v, i) => [cols[i], cols[i] === 'phase' ? v : Number(v)])));
  console.log('| from request | RSS floor (MB) | RSS median (MB) | heap used floor (MB) | fds (max) | active handles (max) |');
  console.log('|---|---|---|---|---|---|');
  for (const t of tenths(curve)) console.log(`| ${t.fromRequest.toLocaleString('en')} | ${t.rssFloorMb} | ${t.rssMedianMb} | ${t.heapFloorMb} | ${t.fdsMax} | ${t.handlesMax} |`);
}

async function inside(a) {
  const { dir } = JSON.parse(readFileSync(a.state, 'utf8'));
  await writeCertificates(ROOT, dir);
  const upstream = spawn(process.execPath, [fileURLToPath(import.meta.url), '--upstream', dir], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((resolve, reject) => {
    upstream.stdout.once('data', resolve);
    upstream.once('exit', (c) => reject(new Error(`fake provider exited ${c}`)));
  });
  const policyFile = join(dir, 'policy.yaml');
  writeFileSync(policyFile, 'apiVersion: aigress.io/v1alpha1\nkind: EgressPolicy\nmetadata: { name: soak }\nspec:\n  providers: [openai]\n  models: { allow: ["gpt-4o*"] }\n');
  const out = openSync(join(dir, 'proxy.log'), 'a');
  const args = [join(ROOT, 'bin/aigress.js'), 'proxy', '--policy', policyFile, '--ca-dir', join(dir, 'ca'), '--bundle-dir', join(dir, 'bundle'), '--capture-port', String(PORTS.capture), '--admin-port', String(PORTS.admin), '--listen-address', '127.0.0.1', '--log-level', a.logLevel];
  const proxy = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', out, out], env: { ...process.env, NODE_EXTRA_CA_CERTS: join(dir, 'upstream-root.crt') } });
  const stopAll = () => {
    proxy.kill('SIGTERM');
    upstream.kill('SIGTERM');
  };
  try {
    await waitForStatus(PORTS.admin, '/readyz', 30_000, 20, proxy);
    const client = await makeClient(readFileSync(join(dir, 'ca/ca.crt'), 'utf8'), a.concurrency);
    const state = { done: 0, errors: 0, firstErrors: [] };
    const t0 = performance.now();
    const curve = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const s = await sample(proxy.pid, t0, state.done, state.errors);
        curve.push({ ...s, phase: state.done < a.warmup ? 'warmup' : 'main' });
        await sleep(a.sampleMs);
      }
    })();
    const progress = setInterval(() => log(`${state.done.toLocaleString('en')} / ${a.requests.toLocaleString('en')} requests, ${state.errors} errors, RSS ${curve.at(-1)?.rssMb} MB, handles ${curve.at(-1)?.handles}`), 30_000);

    log(`warm-up: ${a.warmup.toLocaleString('en')} requests`);
    await drive(client, a, a.warmup, state);
    const afterWarmup = await idleFigures(proxy.pid, t0, state);
    log(`after warm-up, idle: ${JSON.stringify(afterWarmup)}`);
    const tMain = performance.now();
    const cpuMain = procFigures(proxy.pid).cpuS;
    await drive(client, a, a.requests - a.warmup, state);
    const mainSeconds = (performance.now() - tMain) / 1000;
    const cpuUsed = procFigures(proxy.pid).cpuS - cpuMain;
    const atEnd = await idleFigures(proxy.pid, t0, state);
    sampling = false;
    await sampler;
    clearInterval(progress);
    log(`after the run, idle: ${JSON.stringify(atEnd)}`);

    const main = curve.filter((s) => s.phase === 'main' && s.requests < a.requests && Number.isFinite(s.rssMb));
    const tenth = Math.max(1, Math.floor(main.length / 10));
    const first = main.slice(0, tenth);
    const last = main.slice(-tenth);
    const floor = (xs, k) => Math.min(...xs.map((s) => s[k]));
    const early = floor(first, 'rssMb');
    const late = floor(last, 'rssMb');
    const drift = (late - early) / early;
    const round4 = (x) => Math.round(x * 10_000) / 10_000;
    const checks = {
      errors: state.errors === 0,
      rssDrift: Math.abs(drift) < DRIFT_LIMIT,
      handles: atEnd.handles <= afterWarmup.handles + HANDLE_SLACK,
      fds: atEnd.fds <= afterWarmup.fds + HANDLE_SLACK,
    };
    const summary = {
      finishedAt: new Date().toISOString(),
      command: `node bench/soak.js ${process.argv.slice(2).filter((x, i, all) => x !== '--inside' && x !== '--state' && all[i - 1] !== '--state').join(' ')}`.trim(),
      machine: { nproc: cpus().length, node: process.version, loadAverage: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ') },
      options: { requests: a.requests, warmup: a.warmup, concurrency: a.concurrency, streamEvery: a.streamEvery, freshConnectionEvery: a.freshEvery, sseEvents: SSE_EVENTS, logLevel: a.logLevel, sampleMs: a.sampleMs },
      requests: state.done,
      streams: Math.ceil(state.done / a.streamEvery),
      errors: state.errors,
      firstErrors: state.firstErrors,
      mainSeconds: Math.round(mainSeconds),
      mainRps: Math.round((a.requests - a.warmup) / mainSeconds),
      proxyCpuUsPerRequest: Math.round((cpuUsed / (a.requests - a.warmup)) * 1e6),
      rss: {
        earlyFloorMb: early,
        lateFloorMb: late,
        drift: round4(drift),
        earlyMedianMb: median(first.map((s) => s.rssMb)),
        lateMedianMb: median(last.map((s) => s.rssMb)),
        minMb: floor(main, 'rssMb'),
        maxMb: Math.max(...main.map((s) => s.rssMb)),
        hwmMb: Math.round(procFigures(proxy.pid).hwmMb * 10) / 10,
      },
      heapUsed: { earlyFloorMb: floor(first, 'heapUsedMb'), lateFloorMb: floor(last, 'heapUsedMb'), drift: round4((floor(last, 'heapUsedMb') - floor(first, 'heapUsedMb')) / floor(first, 'heapUsedMb')), earlyMedianMb: median(first.map((s) => s.heapUsedMb)), lateMedianMb: median(last.map((s) => s.heapUsedMb)) },
      idle: { afterWarmup, atEnd },
      tenths: tenths(curve),
      checks,
      pass: Object.values(checks).every(Boolean),
      samples: curve.length,
    };
    console.log(JSON.stringify(summary, null, 2));
    if (a.write) {
      const outDir = join(ROOT, 'bench/results/soak');
      mkdirSync(outDir, { recursive: true });
      const stamp = summary.finishedAt.replace(/[:]/g, '-').replace(/\..*$/, '');
      const cols = ['t', 'phase', 'requests', 'errors', 'rssMb', 'heapUsedMb', 'heapTotalMb', 'handles', 'fds', 'cpuS'];
      writeFileSync(join(outDir, `${stamp}.csv`), [cols.join(','), ...curve.map((s) => cols.map((c) => s[c]).join(','))].join('\n') + '\n');
      writeFileSync(join(outDir, `${stamp}.json`), JSON.stringify(summary, null, 2) + '\n');
      log(`wrote bench/results/soak/${stamp}.csv and .json`);
    }
    log(summary.pass ? 'PASS' : `FAIL: ${Object.entries(checks).filter(([, ok]) => !ok).map(([k]) => k).join(', ')}`);
    return summary.pass ? 0 : 1;
  } finally {
    stopAll();
  }
}

async function outside() {
  if (process.getuid?.() !== 0) {
    console.error('soak: needs root: the proxy runs in its own network namespace (ip netns), as in npm run bench');
    process.exit(2);
  }
  const dir = mkdtempSync(join(tmpdir(), 'aigress-soak-'));
  const ns = `aigress-soak-${process.pid}`;
  const statePath = join(dir, 'state.json');
  writeFileSync(statePath, JSON.stringify({ dir }));
  mkdirSync(`/etc/netns/${ns}`, { recursive: true });
  writeFileSync(`/etc/netns/${ns}/hosts`, `127.0.0.1 localhost\n127.0.0.1 ${HOST}\n`);
  let code = 1;
  try {
    const ok = (args) => {
      const r = spawnSync('ip', args, { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim()}`);
    };
    ok(['netns', 'add', ns]);
    ok(['netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up']);
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, fileURLToPath(import.meta.url), '--inside', '--state', statePath, ...process.argv.slice(2)], { stdio: 'inherit' });
    const stop = () => child.kill('SIGTERM');
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    code = await new Promise((r) => child.once('exit', (c) => r(c ?? 1)));
  } finally {
    spawnSync('ip', ['netns', 'del', ns]);
    rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
    if (code === 0) rmSync(dir, { recursive: true, force: true });
    else console.error(`soak: the proxy's log is kept in ${dir}`);
  }
  process.exit(code);
}

const args = parseArgs(process.argv.slice(2));
if (args.curve) printCurve(args.curve);
else if (args.upstream) runUpstream(args.upstream);
else if (args.inside) process.exit(await inside(args));
else await outside();
