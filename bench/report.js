// BENCHMARKS.md from one results object (bench/results/<date>.json): the side-by-side table, ratios, the cost
// curves, Node 24 against 20, the issue's targets with the gap to each, and the CPU profile behind the misses.
// bench/notes.md (hand-written, about a named run) is appended as it is.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(fileURLToPath(import.meta.url), '../..');
const ok = (x) => typeof x === 'number' && Number.isFinite(x);
const ms = (x, d = 2) => (ok(x) ? x.toFixed(d) : '—');
const int = (x) => (ok(x) ? Math.round(x).toLocaleString('en-US') : '—');
const mib = (x) => (ok(x) ? x.toFixed(1) : '—');
const ratio = (a, b) => (ok(a) && ok(b) && b !== 0 ? `${(a / b).toFixed(2)}×` : '—');

const ORDER = ['aigress', 'aigress-node24', 'nginx', 'mitmproxy', 'portkey', 'direct'];
const PEERS = ['nginx', 'mitmproxy', 'portkey'];

function table(head, rows) {
  return [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

function latencyCell(s, rate, key) {
  const r = s[`r${rate}`];
  if (!r) return '—';
  if (r.saturated) return `saturated (${int(r.achievedRps)} rps done)`;
  return ms(r[key]);
}

/** The issue's targets, each with the measured value (aigress on the machine's Node) and whether it is met. */
export function targets(results) {
  const s = results.summary;
  const a = s.aigress ?? {};
  const n = s.nginx;
  const r1000 = a.r1000 ?? {};
  const ready = results.ready?.node20?.medianMs;
  const ready24 = results.ready?.node24?.medianMs;
  const wh = results.webhook?.open;
  const rows = [
    { id: 'cpu', target: 'CPU per request at 1000 req/s ≤ 200 µs (0.20 vCPU per 1000 rps)', value: r1000.cpuPerRequestUs, unit: 'µs', limit: 200 },
    { id: 'cpu-nginx', target: 'CPU per request ≤ 1.3× nginx', value: n ? r1000.cpuPerRequestUs / n.r1000.cpuPerRequestUs : NaN, unit: '× nginx', limit: 1.3 },
    { id: 'rps-core', target: '≥ 5,000 rps on one core (closed loop, requests per CPU-second)', value: a.rpsPerCore, unit: 'rps/core', limit: 5000, atLeast: true },
    { id: 'p50', target: 'added latency p50 at 1000 req/s ≤ 0.3 ms', value: r1000.addedP50, unit: 'ms', limit: 0.3 },
    { id: 'p99', target: 'added latency p99 at 1000 req/s ≤ 1.5 ms', value: r1000.addedP99, unit: 'ms', limit: 1.5 },
    { id: 'rss-idle', target: 'RSS idle ≤ 50 MiB', value: a.idleRssMiB, unit: 'MiB', limit: 50 },
    { id: 'rss-1000', target: 'RSS at 1000 req/s ≤ 64 MiB', value: r1000.rssDuringMiB, unit: 'MiB', limit: 64 },
    { id: 'rss-tls', target: 'RSS with 1,000 idle TLS connections ≤ 128 MiB', value: a.idleTls?.rssMiB, unit: 'MiB', limit: 128 },
    { id: 'sse-ttfe', target: 'SSE added time to first event p99 ≤ 1 ms', value: a.sse?.addedTtfeP99, unit: 'ms', limit: 1 },
    { id: 'sse-event', target: 'SSE added time per event ≤ 50 µs', value: a.sse?.addedPerEventUs, unit: 'µs', limit: 50 },
    { id: 'sse-buffer', target: 'SSE: nothing buffered (first event before the provider\'s 100 ms pause ends)', value: a.sse?.ttfeP99, unit: 'ms', limit: 100 },
    { id: 'ready', target: `spawn → ready ≤ 150 ms (Node ${process.versions.node})`, value: ready, unit: 'ms', limit: 150 },
    { id: 'ready24', target: 'spawn → ready ≤ 150 ms (Node 24)', value: ready24, unit: 'ms', limit: 150 },
    { id: 'webhook', target: 'webhook p99 ≤ 5 ms at 500 admissions/s', value: wh?.saturated ? Infinity : wh?.p99, unit: 'ms', limit: 5 },
  ];
  for (const r of rows) {
    r.met = ok(r.value) ? (r.atLeast ? r.value >= r.limit : r.value <= r.limit) : r.value === Infinity ? false : undefined;
    r.gap = !ok(r.value) ? (r.value === Infinity ? 'saturated' : 'not measured') : r.met ? 'met' : r.atLeast ? `${int(r.limit - r.value)} ${r.unit} short (${ratio(r.limit, r.value)} needed)` : `${r.unit === '× nginx' ? (r.value - r.limit).toFixed(2) : ms(r.value - r.limit, r.unit === 'ms' ? 2 : 0)} ${r.unit} over (${ratio(r.value, r.limit)} the target)`;
  }
  return rows;
}

function fmtValue(r) {
  if (!ok(r.value)) return r.value === Infinity ? 'saturated' : '—';
  if (r.unit === 'ms') return `${ms(r.value)} ms`;
  if (r.unit === '× nginx') return `${r.value.toFixed(2)}× nginx`;
  if (r.unit === 'MiB') return `${mib(r.value)} MiB`;
  return `${int(r.value)} ${r.unit}`;
}

function catShare(profile, names) {
  return (profile?.categories ?? []).filter((c) => names.some((n) => c.category.startsWith(n))).reduce((a, c) => a + c.percent, 0);
}

function profileNotes(results, rows) {
  const p = results.profile;
  if (!p || p.skipped) return '_No CPU profile: ' + (p?.skipped ?? 'not run') + '._';
  const plumbing = catShare(p, ['node TLS', 'node net', 'node streams', 'node:http', 'node events', 'native']);
  const undici = catShare(p, ['undici']);
  const pipeline = catShare(p, ['aigress pipeline', 'aigress shared']);
  const proxy = catShare(p, ['aigress proxy']);
  const obs = catShare(p, ['pino', 'prom-client']);
  const gc = catShare(p, ['GC']);
  const program = catShare(p, ['V8/native (program)']);
  const a = results.summary.aigress ?? {};
  const r24 = results.ready?.node24;
  const r20 = results.ready?.node20;
  const out = [];
  const miss = (id) => rows.find((r) => r.id === id && r.met === false);
  const where = `In the profile (1000 req/s for ${p.seconds} s, ${int(p.busyMs)} ms busy): TLS/HTTP/stream plumbing in Node ${plumbing.toFixed(0)} % (native writes and crypto included), undici ${undici.toFixed(0)} %, the policy pipeline and provider code ${pipeline.toFixed(0)} %, the proxy's own mediation code ${proxy.toFixed(0)} %, pino and prom-client ${obs.toFixed(0)} %, GC ${gc.toFixed(0)} %, V8 "(program)" ${program.toFixed(0)} %.`;
  if (miss('cpu') || miss('cpu-nginx') || miss('rps-core')) {
    out.push(`- **CPU per request / rps per core.** ${where} The cost is mostly the two TLS+HTTP legs in Node (native TLS writes and the JavaScript HTTP/stream layers around them; nginx does both in C), not the policy: even a zero-cost pipeline would leave ${(100 - pipeline).toFixed(0)} % of the time. The lever is fewer layers and fewer writes per request (node:http and streams on the app leg, one write per head+body), which the pipeline rewrite in sidecar/proxy/mediate.ts owns.`);
  }
  if (miss('p50') || miss('p99')) {
    out.push(`- **Added latency.** The same profile: at ${int(a.r1000?.cpuPerRequestUs)} µs of CPU per request the proxy is ${ok(a.r1000?.cpuPerRequestUs) ? ((a.r1000.cpuPerRequestUs * 1000) / 1e6 * 100).toFixed(0) : '—'} % busy at 1000 req/s on one core: the added p50 follows the CPU each request costs on its two legs, and some requests wait behind others and behind GC (${gc.toFixed(0)} % of busy time). The p99 on this shared 2-core machine mostly follows the machine's load (the load generator, the fake provider and the other sessions): it moves as much for nginx and for direct.`);
  }
  if (miss('rss-idle') || miss('rss-1000') || miss('rss-tls')) {
    out.push(`- **Memory.** RSS at ready is ${mib(r20?.rssAtReadyMiB)} MiB on Node 20 and ${mib(r24?.rssAtReadyMiB)} MiB on Node 24 before any request; idle after the first requests (undici loaded after ready, leaf minted) ${mib(a.idleRssMiB)} MiB, ${mib(a.r1000?.rssDuringMiB)} MiB at 1000 req/s. A bare \`node\` is about 39 MiB of that on this machine (docs/proxy.md), so the budget left for the proxy's code and heap is small: a bundled entry that loads only what it uses, lazy cold paths, and a smaller young generation (\`--max-semi-space-size\`) are the levers named in the issue. The CPU profile does not show memory; a heap snapshot is the next measurement.`);
  }
  if (miss('sse-ttfe') || miss('sse-event') || miss('sse-buffer')) {
    out.push(`- **SSE.** Added time to first event p50 ${ms(a.sse?.addedTtfeP50)} ms, p99 ${ms(a.sse?.addedTtfeP99)} ms, per event ${ms(a.sse?.addedPerEventUs, 0)} µs. The first event waits for the request-side pipeline, the upstream request (undici) and the response-side processors before its first write; the profile's per-request plumbing share above applies to each event's write too.`);
  }
  if (miss('ready') || miss('ready24')) {
    out.push(`- **Spawn → ready.** \`node -e 0\` alone takes ${ms(r20?.bareNodeMs, 0)} ms on Node 20 and ${ms(r24?.bareNodeMs, 0)} ms on Node 24 here; the rest (${ms(r20?.medianMs - r20?.bareNodeMs, 0)} / ${ms(r24?.medianMs - r24?.bareNodeMs, 0)} ms) is the CLI's own start (loading its modules, reading the CA, minting the first leaf, binding; not broken down by this harness). NODE_COMPILE_CACHE (Node 24) gives ${ms(results.ready?.['node24-compile-cache']?.medianMs, 0)} ms; see Recommendations.`);
  }
  if (miss('webhook')) {
    const w = results.webhook;
    out.push(`- **Webhook.** At ${int(w?.open?.rate)} admissions/s p50 ${ms(w?.open?.p50)} ms and p99 ${ms(w?.open?.p99)} ms with ${int(w?.open?.cpuPerRequestUs)} µs CPU per admission (max ${int(w?.closed?.rps)}/s closed loop). The webhook was not profiled: its p99 moves with the machine's load from run to run far more than its CPU per admission does, so most of this tail is waiting for a core; a profile of \`aigress webhook\` on a quiet machine is the next step.`);
  }
  return out.join('\n');
}

export function renderMarkdown(results, { jsonPath }) {
  const s = results.summary;
  const paths = ORDER.filter((n) => s[n]);
  const label = (n) => s[n].label;
  const m = results.machine ?? {};
  const cfg = results.config;
  const lines = [];
  const skipped = Object.entries(results.paths).filter(([, e]) => e.skipped);

  lines.push('# Benchmarks', '');
  lines.push(`Latest run: ${results.finishedAt} (${results.durationS} s${results.quick ? ', --quick' : ''}), written by \`${results.command}\`; raw figures in [${jsonPath}](${jsonPath}).`, '');
  lines.push(`Machine: ${m.nproc} × ${m.cpuModel}, ${m.memoryGiB} GiB memory, Linux ${m.kernel}, Node ${m.node} (and ${results.peers?.node24?.version ?? 'no Node 24'} for the Node 24 column). Load average before ${results.loadBefore.join(' ')}, after ${results.loadAfter.join(' ')}.`, '');
  lines.push('**These numbers are noisy.** The machine has 2 cores shared with other sessions building and testing at the same time, and the load generator, the fake provider and the proxy under test share those 2 cores too. Read ratios between paths of the same run, not absolute values: CPU per request is the steadiest figure (about ±10 % between the day\'s runs), latency tails the least (p99 moved up to 8× between runs, for every path). Nothing was tuned for the run.', '');

  lines.push('## How it is measured', '');
  lines.push(`- Everything runs in a network namespace of its own (\`ip netns\`), on loopback; its /etc/hosts sends \`api.openai.com\` to 127.0.0.1, where the fake provider (bench/upstream.js, Node https, its own ECDSA test root) listens on 443. Each proxy terminates TLS for \`api.openai.com\` (the client sends SNI and verifies the proxy's chain) and opens its own verified TLS to the provider, keep-alive on both legs.`);
  lines.push(`- **aigress**: the real \`aigress proxy\` process (bin/aigress.js) in standalone mode (\`--policy\`, \`--ca-dir\`), reached on loopback with SNI (not through \`aigress init\`'s iptables REDIRECT), with the default pipeline for a policy of \`providers: [openai]\` (describe, regions, models, metering, stream usage), logging at info level to a file. The provider's root is given as NODE_EXTRA_CA_CERTS.`);
  lines.push(`- **nginx** (Debian, 1 worker): \`proxy_buffering off\`, \`proxy_request_buffering off\`, upstream \`keepalive 64\`, \`proxy_ssl_verify on\`, TLS session reuse upstream, access log buffered (64 KiB). **mitmproxy** (Debian, \`mitmdump --mode reverse:https://api.openai.com/\`, \`stream_large_bodies=1\`: every body streamed). **Portkey** \`@portkey-ai/gateway\` ${results.peers?.portkey?.version ?? ''} from npm with \`@hono/node-server\` pinned to ${results.peers?.portkey?.honoNodeServer ?? '?'} (the registry here has no 1.14.x of the gateway; with 1.15.2's default \`@hono/node-server\` 1.19.x every streamed answer fails with HTTP 500 "TypeError: immutable", and 1.14.2–1.14.4 fail the same way; 1.14.1 streams). Portkey's Node server speaks plain HTTP to its clients, so its client leg has no TLS (which flatters it); its provider leg is HTTPS via \`x-portkey-custom-host\`.`);
  lines.push(`- Load (bench/load.js, undici Pools): open loop at 200 and 1000 req/s (${cfg.openSeconds[200]} s and ${cfg.openSeconds[1000]} s) with latency measured from each request's intended send time (no coordinated omission; a request unanswered 3 s after the last one was due is lost, and more than 1 % lost or failed marks the run saturated); closed loop with ${cfg.closedConcurrency} connections for ${cfg.closedSeconds} s for the maximum rate. Requests are a 1 KiB chat completion answered with 1 KiB of JSON. ${cfg.runs} run(s) per path, interleaved (the order rotates each run); figures are medians over runs, and "added" is the path's percentile minus direct's in the same run.`);
  lines.push(`- CPU per request: utime+stime of the proxy's process tree (/proc/PID/stat) over the run divided by the answered requests; for "direct" it is the fake provider's own CPU, for scale. rps per core: closed-loop requests per CPU-second of the proxy. RSS: VmRSS summed over the tree (idle: 1 s after ready, before any request; "at 1000 req/s": the highest 100 ms sample during that run), peak: VmHWM at the end.`);
  lines.push(`- SSE: a 200-event stream; the provider sends event 1, pauses 100 ms, then sends 199 events each on its own turn of the event loop. Time to first event is from send to the first complete event; per event is (last − second) / 198. ${cfg.sseStreams} streams one after another.`);
  lines.push(`- TLS handshakes: 8 clients making full handshakes (no resumption) to the proxy's ECDSA P-256 leaf for ${cfg.handshakeSeconds} s. Body size: ${cfg.sizeRequests} sequential requests per size, request and answer of that size. Rules: aigress with N model globs in \`models.allow\` (the matching one last), ${cfg.rulesRate} req/s open loop. Webhook: bench/webhook.js runs the admission server of \`aigress webhook\` (dist/webhook/server.js, HTTPS, /mutate, info logging) as the tests do, without Kubernetes; the review is test/fixtures/inject/01-pod-minimal.`);
  if (skipped.length) lines.push(`- Skipped: ${skipped.map(([n, e]) => `${n} (${e.skipped})`).join('; ')}.`);
  lines.push('');

  lines.push(`## Side by side (1 KiB JSON; medians of ${cfg.runs} run(s))`, '');
  const row = (name, f) => [name, ...paths.map((p) => f(s[p], p))];
  const rows = [
    row('added latency p50 / p90 / p99 at 200 req/s (ms)', (x, p) => (p === 'direct' ? `${ms(x.r200?.p50)} / ${ms(x.r200?.p90)} / ${ms(x.r200?.p99)} (total)` : x.r200?.saturated ? latencyCell(x, 200) : `${ms(x.r200?.addedP50)} / ${ms(x.r200?.addedP90)} / ${ms(x.r200?.addedP99)}`)),
    row('added latency p50 / p90 / p99 at 1000 req/s (ms)', (x, p) => (p === 'direct' ? `${ms(x.r1000?.p50)} / ${ms(x.r1000?.p90)} / ${ms(x.r1000?.p99)} (total)` : x.r1000?.saturated ? latencyCell(x, 1000) : `${ms(x.r1000?.addedP50)} / ${ms(x.r1000?.addedP90)} / ${ms(x.r1000?.addedP99)}`)),
    row('CPU per request at 1000 req/s (µs)', (x, p) => `${int(x.r1000?.cpuPerRequestUs)}${p === 'direct' ? ' (provider)' : ''}`),
    row('CPU per request at 200 req/s (µs)', (x) => int(x.r200?.cpuPerRequestUs)),
    row(`max rps, closed loop, ${cfg.closedConcurrency} connections`, (x) => int(x.maxRps)),
    row('CPU per request at max rps (µs)', (x) => int(x.closedCpuPerRequestUs)),
    row('rps per core (closed loop)', (x) => int(x.rpsPerCore)),
    row('CPU when idle (ms per second)', (x) => ms(x.idleCpuMsPerS, 1)),
    row('RSS idle / at 1000 req/s / peak (MiB)', (x) => `${mib(x.idleRssMiB)} / ${mib(x.r1000?.rssDuringMiB)} / ${mib(x.peakRssMiB)}`),
    row('SSE added time to first event p50 / p99 (ms)', (x, p) => (p === 'direct' ? `${ms(x.sse?.ttfeP50)} / ${ms(x.sse?.ttfeP99)} (total)` : x.sse ? `${ms(x.sse.addedTtfeP50)} / ${ms(x.sse.addedTtfeP99)}${x.sse.errors ? ` (${x.sse.errors} failed)` : ''}` : '—')),
    row('SSE added time per event (µs)', (x, p) => (p === 'direct' ? `${ms(x.sse?.perEventUs, 0)} (total)` : ms(x.sse?.addedPerEventUs, 0))),
    row('full TLS handshakes per second', (x) => (x.handshakesPerSecond === undefined ? 'no TLS' : int(x.handshakesPerSecond))),
    row('RSS with 1,000 idle TLS connections (MiB)', (x) => (x.idleTls ? mib(x.idleTls.rssMiB) : '')),
  ];
  lines.push(table(['', ...paths.map(label)], rows), '');

  if (s.aigress) {
    lines.push('## aigress against direct and each peer', '');
    lines.push('aigress (on the machine\'s Node) divided by the other path; below 1× means aigress is cheaper or faster.', '');
    const a = s.aigress;
    const vs = ['direct', ...PEERS].filter((p) => s[p]);
    const cmp = (f, p) => {
      const x = s[p];
      return x.r1000?.saturated && f.load ? `${p} saturated at 1000 req/s` : ratio(f.get(a), f.get(x));
    };
    const metrics = [
      { name: 'total latency p50 at 1000 req/s', get: (x) => x.r1000?.p50, load: true },
      { name: 'total latency p99 at 1000 req/s', get: (x) => x.r1000?.p99, load: true },
      { name: 'CPU per request at 1000 req/s', get: (x) => x.r1000?.cpuPerRequestUs, load: true },
      { name: 'max rps (closed loop)', get: (x) => x.maxRps },
      { name: 'rps per core', get: (x) => x.rpsPerCore },
      { name: 'RSS idle', get: (x) => x.idleRssMiB },
      { name: 'RSS peak', get: (x) => x.peakRssMiB },
      { name: 'SSE time to first event p50', get: (x) => x.sse?.ttfeP50 },
      { name: 'full TLS handshakes per second', get: (x) => x.handshakesPerSecond },
    ];
    const addedRow = { name: 'added latency p50 at 200 req/s', get: (x) => x.r200?.addedP50 };
    lines.push(
      table(['aigress ÷', ...vs.map((p) => s[p].label)], [
        ...metrics.map((f) => [f.name, ...vs.map((p) => cmp(f, p))]),
        [addedRow.name, ...vs.map((p) => (p === 'direct' ? '' : ratio(addedRow.get(a), addedRow.get(s[p]))))],
      ]),
      '',
    );
  }

  lines.push('## Added latency against body size (sequential requests, no other load; p50 ms)', '');
  const sized = paths.filter((p) => p !== 'direct' && s[p].sizes);
  if (sized.length && s.direct?.sizes) {
    lines.push(
      table(['request = answer size', 'direct (total)', ...sized.map(label)], s.direct.sizes.map((z, i) => [`${(z.size / 1024).toFixed(0)} KiB`, ms(results.paths.direct.sizes[i].p50), ...sized.map((p) => ms(s[p].sizes[i]?.addedP50))])),
      '',
    );
  }

  if (results.rules?.points?.length) {
    const r = results.rules;
    lines.push(`## Added latency against the number of policy rules (aigress, ${r.rate} req/s open loop, ${r.seconds} s)`, '');
    lines.push(`N model globs in \`models.allow\`, the one that matches \`gpt-4o\` last. Direct at the same rate: p50 ${ms(r.direct.p50)} ms, p99 ${ms(r.direct.p99)} ms. Filters of the filters issue are not in this build, so only globs are swept.`, '');
    lines.push(table(['model globs', 'added p50 (ms)', 'added p99 (ms)', 'CPU per request (µs)'], r.points.map((p) => [String(p.globs), p.saturated ? 'saturated' : ms(p.addedP50), p.saturated ? 'saturated' : ms(p.addedP99), int(p.cpuPerRequestUs)])), '');
  }

  if (results.ready) {
    lines.push('## Spawn → ready (`aigress proxy` standalone, until /readyz answers 200, polled every 2 ms)', '');
    lines.push(table(['variant', 'median (ms)', 'min (ms)', 'max (ms)', 'RSS at ready (MiB)', '`node -e 0` (ms)'], Object.values(results.ready).map((v) => [v.label, ms(v.medianMs, 0), ms(v.minMs, 0), ms(v.maxMs, 0), mib(v.rssAtReadyMiB), ms(v.bareNodeMs, 0)])), '');
  }

  if (results.webhook) {
    const w = results.webhook;
    lines.push('## Webhook admissions over HTTPS', '');
    if (w.skipped) lines.push(`Skipped: ${w.skipped}`, '');
    else
      lines.push(
        table(['load', 'admissions/s done', 'p50 (ms)', 'p90 (ms)', 'p99 (ms)', 'CPU per admission (µs)'], [
          [`open loop ${w.open.rate}/s, ${w.open.seconds} s`, int(w.open.achievedRps), w.open.saturated ? 'saturated' : ms(w.open.p50), ms(w.open.p90), ms(w.open.p99), int(w.open.cpuPerRequestUs)],
          [`closed loop, ${w.closed.concurrency} connections`, int(w.closed.rps), '', '', '', int(w.closed.cpuPerRequestUs)],
        ]),
        '',
      );
  }

  if (s.aigress && s['aigress-node24']) {
    const a = s.aigress;
    const b = s['aigress-node24'];
    lines.push('## aigress on Node 24 against Node 20', '');
    lines.push(
      table(['', a.label, b.label, 'Node 24 ÷ Node 20'], [
        ['spawn → ready, median (ms)', ms(results.ready?.node20?.medianMs, 0), ms(results.ready?.node24?.medianMs, 0), ratio(results.ready?.node24?.medianMs, results.ready?.node20?.medianMs)],
        ['CPU per request at 1000 req/s (µs)', int(a.r1000?.cpuPerRequestUs), int(b.r1000?.cpuPerRequestUs), ratio(b.r1000?.cpuPerRequestUs, a.r1000?.cpuPerRequestUs)],
        ['CPU per request at max rps (µs)', int(a.closedCpuPerRequestUs), int(b.closedCpuPerRequestUs), ratio(b.closedCpuPerRequestUs, a.closedCpuPerRequestUs)],
        ['max rps (closed loop)', int(a.maxRps), int(b.maxRps), ratio(b.maxRps, a.maxRps)],
        ['added p50 / p99 at 1000 req/s (ms)', `${ms(a.r1000?.addedP50)} / ${ms(a.r1000?.addedP99)}`, `${ms(b.r1000?.addedP50)} / ${ms(b.r1000?.addedP99)}`, ''],
        ['RSS idle / at 1000 req/s / peak (MiB)', `${mib(a.idleRssMiB)} / ${mib(a.r1000?.rssDuringMiB)} / ${mib(a.peakRssMiB)}`, `${mib(b.idleRssMiB)} / ${mib(b.r1000?.rssDuringMiB)} / ${mib(b.peakRssMiB)}`, ratio(b.idleRssMiB, a.idleRssMiB)],
        ['SSE added first event p50 (ms)', ms(a.sse?.addedTtfeP50), ms(b.sse?.addedTtfeP50), ''],
      ]),
      '',
    );
  }

  const rowsT = targets(results);
  lines.push('## Targets (issue 13)', '');
  lines.push(`Measured on aigress as built (Node ${process.versions.node} unless the row says otherwise).`, '');
  lines.push(table(['target', 'measured', 'gap'], rowsT.map((r) => [r.target, fmtValue(r), r.met === true ? 'met' : r.met === false ? `**missed**: ${r.gap}` : r.gap])), '');

  const p = results.profile;
  lines.push(`## CPU profile at 1000 req/s (aigress, Node ${process.versions.node}, \`node --cpu-prof\`)`, '');
  if (p && !p.skipped) {
    lines.push(`${p.note}; during it p50 ${ms(p.p50)} ms, p99 ${ms(p.p99)} ms, ${int(p.cpuPerRequestUs)} µs CPU per request. Shares of busy (non-idle) time by self time.`, '');
    lines.push(table(['category', 'self time'], p.categories.slice(0, 16).map((c) => [c.category, `${c.percent.toFixed(1)} %`])), '');
    lines.push(table(['top functions by self time', 'where', 'category', 'self time'], p.functions.map((f) => [`\`${f.function}\``, `\`${f.where}\``, f.category, `${f.percent.toFixed(1)} %`])), '');
  } else lines.push(`No profile: ${p?.skipped ?? 'not run'}.`, '');
  lines.push('### Profile notes for the missed targets', '');
  lines.push(profileNotes(results, rowsT) || 'Every target met.', '');

  lines.push('## Recommendations (measured, not applied to the proxy)', '');
  const r = results.ready ?? {};
  if (r.node24 && r['node24-compile-cache']) {
    lines.push(`- **Node's compile cache** (\`NODE_COMPILE_CACHE=<dir>\` or \`module.enableCompileCache()\`, Node ≥ 22.1): spawn → ready ${ms(r.node24.medianMs, 0)} ms → ${ms(r['node24-compile-cache'].medianMs, 0)} ms on Node 24 with a warm cache (${ratio(r['node24-compile-cache'].medianMs, r.node24.medianMs)}). In a pod the cache would have to be baked into the image (written at build time to a read-only path) or it is cold on every start; no effect on Node 20, which lacks it.`);
  }
  if (r.node20 && r.node24) lines.push(`- **Node 24 for the image**: spawn → ready ${ms(r.node20.medianMs, 0)} ms on Node 20 and ${ms(r.node24.medianMs, 0)} ms on Node 24 (\`node -e 0\`: ${ms(r.node20.bareNodeMs, 0)} vs ${ms(r.node24.bareNodeMs, 0)} ms); the CPU and memory rows are in the Node 24 table above.`);
  lines.push('');

  const notes = join(ROOT, 'bench/notes.md');
  if (existsSync(notes)) lines.push(readFileSync(notes, 'utf8').trim(), '');
  return lines.join('\n');
}
