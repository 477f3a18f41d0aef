// Everything measured inside the benchmark's network namespace, in one process that drives the load; the fake
// provider, every proxy and the webhook are child processes whose CPU and memory are read from /proc.

import { Buffer } from 'node:buffer';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { clearInterval, setInterval } from 'node:timers';
import { setTimeout as sleep } from 'node:timers/promises';
import { closedLoop, createClient, handshakes, openLoop, requestBody, sequential, smoke, sseStream, sseSummary, warmUp } from './load.js';
import { HOST, writeCertificates } from './pki.js';
import { cpuMicros, loadAverage, memory } from './proc.js';
import { policyYaml, startAigress, startMitmproxy, startNginx, startPortkey } from './peers.js';
import { summarise } from './profile.js';

const FULL = {
  runs: 3,
  openSeconds: { 200: 5, 1000: 10 },
  closedSeconds: 6,
  closedConcurrency: 32,
  sseStreams: 40,
  handshakeSeconds: 4,
  sizes: [1024, 16_384, 131_072, 1_048_576],
  sizeRequests: 30,
  rules: [1, 10, 100, 1000],
  rulesRate: 500,
  rulesSeconds: 6,
  readyRuns: 7,
  webhookRate: 500,
  webhookSeconds: 6,
  profileSeconds: 10,
  idleTlsConnections: 1000,
};
const QUICK = {
  ...FULL,
  runs: 1,
  openSeconds: { 200: 3, 1000: 4 },
  closedSeconds: 3,
  sseStreams: 12,
  handshakeSeconds: 2,
  sizes: [1024, 131_072, 1_048_576],
  sizeRequests: 10,
  rules: [1, 1000],
  rulesSeconds: 3,
  readyRuns: 3,
  webhookSeconds: 3,
  profileSeconds: 5,
};

const PORTS = { upstream: 443, aigress: 14001, aigressAdmin: 14020, nginx: 8443, mitmproxy: 8444, portkey: 8787, webhook: 9443, spare: 14201, spareAdmin: 14220 };
const median = (xs) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const log = (m) => console.log(`bench: ${m}`);

function startChild(node, file, args, dir, name) {
  const proc = spawn(node, [file, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    proc.stdout.on('data', (c) => {
      out += c;
      const m = /listening (\d+)/.exec(out);
      if (m) resolve({ proc, pid: proc.pid, port: Number(m[1]), stop: () => proc.kill('SIGTERM') });
    });
    proc.once('exit', (c) => reject(new Error(`${name} exited with ${c}`)));
  });
}

/** Waits until a TLS listener completes a handshake for api.openai.com against `ca`. */
async function waitListening(port, ca, timeoutMs = 30_000) {
  const t0 = performance.now();
  for (;;) {
    const ok = await new Promise((resolve) => {
      const s = tlsConnect({ host: '127.0.0.1', port, servername: HOST, ca }, () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (performance.now() - t0 > timeoutMs) throw new Error(`nothing listening on :${port} after ${timeoutMs} ms`);
    await sleep(50);
  }
}

/** Runs `fn` with CPU of `pid` (and children) measured around it; RSS sampled every 100 ms while it runs. */
async function withCpu(pid, fn) {
  let peakRss = 0;
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, memory(pid).rssMiB)), 100);
  const c0 = cpuMicros(pid);
  const t0 = performance.now();
  try {
    const r = await fn();
    const cpuUs = cpuMicros(pid) - c0;
    const wallS = (performance.now() - t0) / 1000;
    return { ...r, cpuUs, cpuCores: cpuUs / 1e6 / wallS, rssDuringMiB: Math.max(peakRss, memory(pid).rssMiB) };
  } finally {
    clearInterval(sampler);
  }
}

async function openWithCpu(path, rate, seconds) {
  const client = await createClient(path.target, 64);
  try {
    await warmUp(client, 192, 64);
    const r = await withCpu(path.pid, () => openLoop(client, { rate, seconds }));
    return { ...r, cpuPerRequestUs: r.cpuUs / Math.max(1, r.ok) };
  } finally {
    await client.pool.destroy();
  }
}

async function closedWithCpu(path, cfg) {
  const client = await createClient(path.target, cfg.closedConcurrency);
  try {
    await warmUp(client, 128, cfg.closedConcurrency);
    const r = await withCpu(path.pid, () => closedLoop(client, { concurrency: cfg.closedConcurrency, seconds: cfg.closedSeconds }));
    return { ...r, cpuPerRequestUs: r.cpuUs / Math.max(1, r.ok), rpsPerCore: Math.round(r.ok / (r.cpuUs / 1e6)) };
  } finally {
    await client.pool.destroy();
  }
}

/** RSS with `n` TLS connections open and idle (handshaken, no request), as many idle SDK clients leave them. */
async function idleConnectionsRss(path, n) {
  const sockets = [];
  const before = memory(path.pid).rssMiB;
  for (let i = 0; i < n; i += 50) {
    await Promise.all(
      Array.from({ length: Math.min(50, n - i) }, () =>
        new Promise((resolve) => {
          const s = tlsConnect({ host: '127.0.0.1', port: path.target.port, servername: HOST, ca: path.target.ca, ALPNProtocols: ['http/1.1'] }, () => resolve());
          s.once('error', () => resolve());
          sockets.push(s);
        }),
      ),
    );
  }
  await sleep(1000);
  const open = sockets.filter((s) => !s.destroyed).length;
  const m = memory(path.pid);
  for (const s of sockets) s.destroy();
  return { connections: n, stillOpen: open, rssBeforeMiB: before, rssMiB: m.rssMiB };
}

function definePaths(root, dir, peers, only) {
  const all = [
    { name: 'direct', label: 'direct (client → fake provider)', start: async () => ({}) },
    {
      name: 'aigress',
      label: `aigress (Node ${process.versions.node})`,
      start: () => startAigress({ root, dir, name: 'aigress', node: process.execPath, capturePort: PORTS.aigress, adminPort: PORTS.aigressAdmin, policyFile: join(dir, 'policy.yaml') }),
    },
    {
      name: 'aigress-node24',
      label: `aigress (Node ${peers.node24?.version?.slice(1) ?? '24'})`,
      skip: peers.node24?.ok ? undefined : peers.node24?.reason ?? 'node 24 not installed',
      start: () => startAigress({ root, dir, name: 'aigress-node24', node: peers.node24.bin, capturePort: PORTS.aigress + 100, adminPort: PORTS.aigressAdmin + 100, policyFile: join(dir, 'policy.yaml') }),
    },
    {
      name: 'nginx',
      label: `nginx ${(peers.nginx?.version ?? '').replace('nginx/', '')} (1 worker)`,
      skip: peers.nginx?.ok ? undefined : peers.nginx?.reason,
      start: async () => {
        const h = await startNginx({ dir, port: PORTS.nginx });
        await waitListening(PORTS.nginx, h.target.ca);
        return h;
      },
    },
    {
      name: 'mitmproxy',
      label: `mitmproxy ${peers.mitmproxy?.version ?? ''} (reverse)`,
      skip: peers.mitmproxy?.ok ? undefined : peers.mitmproxy?.reason,
      start: async () => {
        const h = await startMitmproxy({ dir, port: PORTS.mitmproxy });
        await waitListening(PORTS.mitmproxy, h.target.ca);
        return h;
      },
    },
    {
      name: 'portkey',
      label: `Portkey gateway ${peers.portkey?.version ?? ''} (HTTP to client)`,
      skip: peers.portkey?.ok ? undefined : peers.portkey?.reason,
      start: () => startPortkey({ dir, port: PORTS.portkey, bin: peers.portkey.bin }),
    },
  ];
  return all.filter((p) => !only || p.name === 'direct' || only.includes(p.name));
}

export async function measure({ root, dir, peers, quick, runs, only }) {
  const cfg = { ...(quick ? QUICK : FULL), ...(runs ? { runs } : {}) };
  const startedAt = new Date().toISOString();
  const t0 = performance.now();
  const loadBefore = loadAverage();
  await writeCertificates(root, dir);
  writeFileSync(join(dir, 'policy.yaml'), policyYaml(0));
  const upstreamRoot = readFileSync(join(dir, 'upstream-root.crt'), 'utf8');

  const upstream = await startChild(process.execPath, join(root, 'bench/upstream.js'), [dir, String(PORTS.upstream)], dir, 'fake provider');
  const results = { startedAt, quick, config: cfg, loadBefore, peers, paths: {} };
  const live = [];
  try {
    for (const def of definePaths(root, dir, peers, only)) {
      const entry = { label: def.label };
      results.paths[def.name] = entry;
      if (def.skip) {
        entry.skipped = def.skip;
        log(`${def.name}: skipped (${def.skip})`);
        continue;
      }
      try {
        const h = def.name === 'direct' ? { pid: upstream.pid, target: { port: PORTS.upstream, tls: true, ca: upstreamRoot }, stop: async () => {} } : await def.start();
        if (h.readyMs !== undefined) entry.readyMs = h.readyMs;
        await sleep(1000); // aigress loads undici just after ready: not idle yet
        const idleCpu0 = cpuMicros(h.pid);
        await sleep(2000);
        entry.idleCpuMsPerS = (cpuMicros(h.pid) - idleCpu0) / 2000;
        entry.idleRssMiB = memory(h.pid).rssMiB;
        const client = await createClient(h.target, 1);
        try {
          await smoke(client);
          await smoke(client, requestBody(1024, 1_048_576));
        } finally {
          await client.pool.destroy();
        }
        live.push({ ...def, ...h, entry });
        log(`${def.name}: up (pid ${h.pid}, idle RSS ${entry.idleRssMiB.toFixed(1)} MiB)`);
      } catch (err) {
        entry.skipped = `did not start or answer: ${err.message}`;
        log(`${def.name}: skipped (${entry.skipped})`);
      }
    }

    for (let r = 0; r < cfg.runs; r++) {
      // rotate the order each run so drift in the machine's load spreads over every path
      const order = [...live.slice(r % live.length), ...live.slice(0, r % live.length)];
      for (const p of order) {
        for (const rate of [200, 1000]) {
          const res = await openWithCpu(p, rate, cfg.openSeconds[rate]);
          (p.entry[`open${rate}`] ??= []).push(res);
          log(`run ${r + 1}/${cfg.runs} ${p.name} open ${rate}/s: p50 ${res.p50.toFixed(2)} p99 ${res.p99.toFixed(2)} ms, ${res.achievedRps} rps${res.saturated ? ' SATURATED' : ''}, ${res.cpuPerRequestUs.toFixed(0)} µs CPU/req`);
        }
        const c = await closedWithCpu(p, cfg);
        (p.entry.closed ??= []).push(c);
        log(`run ${r + 1}/${cfg.runs} ${p.name} closed ${cfg.closedConcurrency}: ${c.rps} rps, ${c.cpuPerRequestUs.toFixed(0)} µs CPU/req`);
      }
    }

    // SSE and body sizes: one stream / request per path in turn, so every path sees the same moments of the
    // machine's (shared, noisy) load rather than one path a quiet minute and the next a busy one.
    const clients = new Map();
    for (const p of live) clients.set(p.name, await createClient(p.target, 1));
    try {
      const samples = new Map(live.map((p) => [p.name, { ok: [], errors: 0, firstError: undefined }]));
      for (let i = 0; i < cfg.sseStreams + 2; i++) {
        for (const p of live) {
          const acc = samples.get(p.name);
          try {
            const x = await sseStream(clients.get(p.name));
            if (i >= 2) acc.ok.push(x); // the first two warm the path
          } catch (err) {
            if (i >= 2) acc.errors++;
            acc.firstError ??= err.message;
          }
        }
      }
      for (const p of live) {
        const acc = samples.get(p.name);
        p.entry.sse = { ...sseSummary(acc.ok, acc.errors), ...(acc.firstError ? { firstError: acc.firstError } : {}) };
        log(`${p.name} sse: first event p50 ${p.entry.sse.ttfeP50.toFixed(2)} ms, ${(p.entry.sse.perEventMs * 1000).toFixed(0)} µs/event${acc.errors ? `, ${acc.errors} failed (${acc.firstError})` : ''}`);
      }
      for (const p of live) p.entry.sizes = [];
      for (const size of cfg.sizes) {
        const body = requestBody(size, size);
        const times = new Map(live.map((p) => [p.name, { t: [], errors: 0 }]));
        for (let i = 0; i < cfg.sizeRequests + 3; i++) {
          for (const p of live) {
            const r = await sequential(clients.get(p.name), 1, body);
            if (i < 3) continue;
            const acc = times.get(p.name);
            if (r.errors) acc.errors++;
            else acc.t.push(r.p50);
          }
        }
        for (const p of live) {
          const acc = times.get(p.name);
          acc.t.sort((a, b) => a - b);
          p.entry.sizes.push({ size, n: acc.t.length, errors: acc.errors, p50: median(acc.t), p90: acc.t[Math.floor(acc.t.length * 0.9)] });
        }
      }
    } finally {
      for (const c of clients.values()) await c.pool.destroy();
    }

    for (const p of live) {
      if (p.target.tls) {
        p.entry.handshakes = await withCpu(p.pid, () => handshakes(p.target.port, p.target.ca, { seconds: cfg.handshakeSeconds }));
        log(`${p.name} TLS handshakes: ${p.entry.handshakes.perSecond}/s`);
      }
      if (p.name.startsWith('aigress')) p.entry.idleTls = await idleConnectionsRss(p, cfg.idleTlsConnections);
      p.entry.peakRssMiB = memory(p.pid).peakMiB;
    }
  } finally {
    for (const p of live) if (p.name !== 'direct') await p.stop();
  }

  try {
    results.rules = await rulesSweep(root, dir, cfg, upstreamRoot, upstream.pid);
    results.ready = await readiness(root, dir, cfg, peers);
    results.webhook = await webhookBench(root, dir, cfg);
    results.profile = await profile(root, dir, cfg);
  } finally {
    upstream.stop();
  }
  results.loadAfter = loadAverage();
  results.finishedAt = new Date().toISOString();
  results.durationS = Math.round((performance.now() - t0) / 1000);
  results.summary = summarize(results);
  return results;
}

async function rulesSweep(root, dir, cfg, upstreamRoot, upstreamPid) {
  const direct = { pid: upstreamPid, target: { port: PORTS.upstream, tls: true, ca: upstreamRoot } };
  const base = await openWithCpu(direct, cfg.rulesRate, cfg.rulesSeconds);
  const out = { rate: cfg.rulesRate, seconds: cfg.rulesSeconds, direct: { p50: base.p50, p99: base.p99 }, points: [] };
  for (const globs of cfg.rules) {
    const policyFile = join(dir, `policy-${globs}.yaml`);
    writeFileSync(policyFile, policyYaml(globs));
    const h = await startAigress({ root, dir, name: `aigress-rules-${globs}`, node: process.execPath, capturePort: PORTS.spare, adminPort: PORTS.spareAdmin, policyFile });
    try {
      const r = await openWithCpu(h, cfg.rulesRate, cfg.rulesSeconds);
      out.points.push({ globs, p50: r.p50, p99: r.p99, addedP50: r.p50 - base.p50, addedP99: r.p99 - base.p99, cpuPerRequestUs: r.cpuPerRequestUs, saturated: r.saturated, ok: r.ok });
      log(`rules ${globs}: added p50 ${(r.p50 - base.p50).toFixed(2)} ms, ${r.cpuPerRequestUs.toFixed(0)} µs CPU/req`);
    } finally {
      await h.stop();
    }
  }
  return out;
}

async function bareNodeMs(node, runs) {
  const times = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    await new Promise((r) => spawn(node, ['-e', '0']).once('exit', r));
    times.push(performance.now() - t);
  }
  return median(times);
}

async function readiness(root, dir, cfg, peers) {
  const variants = [{ name: 'node20', label: `Node ${process.versions.node}`, node: process.execPath }];
  if (peers.node24?.ok) {
    variants.push({ name: 'node24', label: `Node ${peers.node24.version.slice(1)}`, node: peers.node24.bin });
    // Node ≥ 22.1 caches compiled code on disk; the first run fills the cache and is not counted.
    variants.push({ name: 'node24-compile-cache', label: `Node ${peers.node24.version.slice(1)}, NODE_COMPILE_CACHE`, node: peers.node24.bin, env: { NODE_COMPILE_CACHE: join(dir, 'compile-cache') }, prime: true });
  }
  const out = {};
  for (const v of variants) {
    if (v.prime) {
      const h = await startAigress({ root, dir, name: `ready-${v.name}-prime`, node: v.node, capturePort: PORTS.spare, adminPort: PORTS.spareAdmin, policyFile: join(dir, 'policy.yaml'), env: v.env });
      await h.stop();
    }
    const times = [];
    const rss = [];
    for (let i = 0; i < cfg.readyRuns; i++) {
      const h = await startAigress({ root, dir, name: `ready-${v.name}`, node: v.node, capturePort: PORTS.spare, adminPort: PORTS.spareAdmin, policyFile: join(dir, 'policy.yaml'), env: v.env });
      times.push(h.readyMs);
      rss.push(memory(h.pid).rssMiB);
      await h.stop();
    }
    times.sort((a, b) => a - b);
    out[v.name] = { label: v.label, runs: times.length, minMs: times[0], medianMs: median(times), maxMs: times.at(-1), rssAtReadyMiB: median(rss), bareNodeMs: await bareNodeMs(v.node, 3) };
    log(`spawn → ready ${v.label}: median ${out[v.name].medianMs.toFixed(0)} ms (node -e 0: ${out[v.name].bareNodeMs.toFixed(0)} ms)`);
  }
  return out;
}

async function webhookBench(root, dir, cfg) {
  const wh = await startChild(process.execPath, join(root, 'bench/webhook.js'), [dir, String(PORTS.webhook)], dir, 'webhook');
  try {
    const { load } = await import('yaml').then((m) => ({ load: m.parse }));
    const pod = load(readFileSync(join(root, 'test/fixtures/inject/01-pod-minimal/input.yaml'), 'utf8'));
    const review = JSON.stringify({
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: { uid: '705ab4f5-6393-11e8-b7cc-42010a800002', kind: { group: '', version: 'v1', kind: 'Pod' }, resource: { group: '', version: 'v1', resource: 'pods' }, namespace: 'team-a', operation: 'CREATE', userInfo: { username: 'system:serviceaccount:kube-system:replicaset-controller' }, object: pod, dryRun: false },
    });
    const target = { port: wh.port, tls: true, ca: readFileSync(join(dir, 'peer-root.crt'), 'utf8'), hostHeader: 'localhost', path: '/mutate' };
    const mk = async (connections) => {
      const { Pool, buildConnector } = await import('undici');
      const base = buildConnector({ ca: target.ca });
      const pool = new Pool('https://localhost', { connections, connect: (o, cb) => base({ ...o, hostname: '127.0.0.1', port: String(wh.port), servername: 'localhost' }, cb) });
      return { pool, headers: { 'content-type': 'application/json', host: 'localhost' }, path: '/mutate' };
    };
    const probe = await mk(1);
    const r = await probe.pool.request({ method: 'POST', path: '/mutate', headers: probe.headers, body: review });
    const answer = JSON.parse(Buffer.from(await r.body.arrayBuffer()).toString('utf8'));
    await probe.pool.destroy();
    if (!answer.response?.patch) throw new Error(`webhook did not patch the pod: ${JSON.stringify(answer).slice(0, 200)}`);
    const open = await mk(32);
    await warmUp(open, 256, 32, review);
    const o = await withCpu(wh.pid, () => openLoop(open, { rate: cfg.webhookRate, seconds: cfg.webhookSeconds, body: review }));
    await open.pool.destroy();
    const closed = await mk(16);
    await warmUp(closed, 128, 16, review);
    const c = await withCpu(wh.pid, () => closedLoop(closed, { concurrency: 16, seconds: cfg.webhookSeconds, body: review }));
    await closed.pool.destroy();
    const res = { reviewBytes: review.length, open: { ...o, cpuPerRequestUs: o.cpuUs / Math.max(1, o.ok) }, closed: { ...c, cpuPerRequestUs: c.cpuUs / Math.max(1, c.ok) } };
    log(`webhook: ${cfg.webhookRate}/s p50 ${o.p50.toFixed(2)} p99 ${o.p99.toFixed(2)} ms; max ${c.rps}/s`);
    return res;
  } catch (err) {
    return { skipped: err.message };
  } finally {
    wh.stop();
  }
}

async function profile(root, dir, cfg) {
  const profDir = join(dir, 'cpu-prof');
  mkdirSync(profDir, { recursive: true });
  const h = await startAigress({ root, dir, name: 'aigress-profiled', node: process.execPath, capturePort: PORTS.spare, adminPort: PORTS.spareAdmin, policyFile: join(dir, 'policy.yaml'), nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${profDir}`] });
  let load;
  let skipUs;
  try {
    // samples before the measured run (start-up, warm-up) are left out of the summary
    skipUs = (performance.now() - h.spawnedAt) * 1000 + 300_000;
    load = await openWithCpu(h, 1000, cfg.profileSeconds);
  } finally {
    await h.stop();
  }
  await sleep(500);
  const files = existsSync(profDir) ? readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile')) : [];
  if (files.length === 0) return { skipped: 'no .cpuprofile written' };
  const s = summarise(join(profDir, files[0]), { skipUs });
  return { rate: 1000, seconds: cfg.profileSeconds, p50: load.p50, p99: load.p99, cpuPerRequestUs: load.cpuPerRequestUs, ...s, note: 'samples from start-up to the end of the warm-up are left out: the summary covers the 1000 req/s run and the drain after it' };
}

/** Medians over runs and the figures the tables show, per path. */
function summarize(results) {
  const direct = results.paths.direct;
  const out = {};
  for (const [name, e] of Object.entries(results.paths)) {
    if (e.skipped) continue;
    const s = { label: e.label };
    for (const rate of [200, 1000]) {
      const runs = e[`open${rate}`] ?? [];
      const d = direct[`open${rate}`] ?? [];
      const sat = runs.some((r) => r.saturated);
      s[`r${rate}`] = {
        saturated: sat,
        achievedRps: median(runs.map((r) => r.achievedRps)),
        p50: median(runs.map((r) => r.p50)),
        p90: median(runs.map((r) => r.p90)),
        p99: median(runs.map((r) => r.p99)),
        addedP50: median(runs.map((r, i) => r.p50 - (d[i]?.p50 ?? NaN))),
        addedP90: median(runs.map((r, i) => r.p90 - (d[i]?.p90 ?? NaN))),
        addedP99: median(runs.map((r, i) => r.p99 - (d[i]?.p99 ?? NaN))),
        cpuPerRequestUs: median(runs.map((r) => r.cpuPerRequestUs)),
        rssDuringMiB: Math.max(...runs.map((r) => r.rssDuringMiB)),
      };
    }
    const closed = e.closed ?? [];
    s.maxRps = median(closed.map((c) => c.rps));
    s.rpsPerCore = median(closed.map((c) => c.rpsPerCore));
    s.closedCpuPerRequestUs = median(closed.map((c) => c.cpuPerRequestUs));
    s.idleRssMiB = e.idleRssMiB;
    s.idleCpuMsPerS = e.idleCpuMsPerS;
    s.peakRssMiB = e.peakRssMiB;
    if (e.sse && direct.sse) {
      s.sse = { ttfeP50: e.sse.ttfeP50, ttfeP99: e.sse.ttfeP99, addedTtfeP50: e.sse.ttfeP50 - direct.sse.ttfeP50, addedTtfeP99: e.sse.ttfeP99 - direct.sse.ttfeP99, perEventUs: e.sse.perEventMs * 1000, addedPerEventUs: (e.sse.perEventMs - direct.sse.perEventMs) * 1000, errors: e.sse.errors, events: e.sse.events };
    }
    if (e.handshakes) s.handshakesPerSecond = e.handshakes.perSecond;
    if (e.sizes && direct.sizes) s.sizes = e.sizes.map((z, i) => ({ size: z.size, p50: z.p50, addedP50: z.p50 - (direct.sizes[i]?.p50 ?? NaN), errors: z.errors }));
    if (e.idleTls) s.idleTls = e.idleTls;
    out[name] = s;
  }
  return out;
}
