#!/usr/bin/env node
// What filters add to a stream over real sockets (not a test): time to first event, time to first text, and the
// delay each streamed text gets, straight to a fake provider and through `aigress proxy` with each filter set.
//   npm run -s build && nice -n 10 node bench/filters-latency.mjs [--streams 30] [--events 80] [--gap 10]
// The fake provider (HTTPS, its own root) runs in this process, so it knows when it sent each event; the proxy is
// a child process (TLS terminated and originated, the real pipeline, info logging to /dev/null), one per filter
// set. Each stream: the provider answers at once with a first event, then one event every --gap ms, each
// carrying " word" (5 characters), a placeholder split across two events ("[EMA", "IL_1]"), then [DONE]. The app
// reads over a kept-alive TLS connection (warmed up first, so no handshake is in the figures).
// Per filter set it prints medians over the streams (p90 in brackets), and the difference to the direct path:
//   first event: request sent → the first SSE event's bytes at the app;
//   first text:  request sent → the first character of content at the app;
//   text delay:  per provider event, its last character at the app − when the provider sent it.

import { Buffer } from 'node:buffer';
import { fork } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer as createHttp } from 'node:http';
import { Agent, createServer, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

const ROOT = join(fileURLToPath(import.meta.url), '../..');
const dist = (p) => join(ROOT, 'dist', p);
const args = Object.fromEntries(process.argv.slice(2).flatMap((a, i, all) => (a.startsWith('--') ? [[a.slice(2), all[i + 1]]] : [])));
const HOST = 'api.openai.com';
const STREAMS = Number(args.streams ?? 30);
const EVENTS = Number(args.events ?? 80);
const GAP = Number(args.gap ?? 10);
const EMAIL = 'ada.lovelace@example.com';
const REQUEST = JSON.stringify({ model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: `Write a short note to ${EMAIL} about the quarterly report.` }] });

/** The texts of one stream, event by event: words, and a placeholder split in two. */
const TEXTS = Array.from({ length: EVENTS }, (_, i) => (i === 10 ? ' [EMA' : i === 11 ? 'IL_1]' : ' word'));

const FILTER_SETS = [
  ['no filters', []],
  ['pii redact + restore', [{ type: 'pii', action: 'redact', restore: true }]],
  ['pii redact, phase both', [{ type: 'pii', action: 'redact', restore: true, phase: 'both' }]],
  ['regex redact, phase both, window 64', [{ type: 'regex', pattern: 'EMP-\\d{6}', action: 'redact', phase: 'both', window: 64 }]],
  ['pii + regex + prompt-injection (request)', [{ type: 'pii', action: 'redact', restore: true }, { type: 'regex', pattern: '(?i)ignore (all )?previous instructions', action: 'block' }, { type: 'prompt-injection', action: 'block' }]],
  ['external guard, request', [{ type: 'external', url: 'GUARD', timeout: '500ms' }]],
  ['external guard, phase both (512-char windows)', [{ type: 'external', url: 'GUARD', timeout: '500ms', phase: 'both' }]],
];

async function proxyRole(dir, upstreamPort, policyFile) {
  const { startProxy } = await import(dist('sidecar/proxy/proxy.js'));
  const { FilePolicySource, LocalCaCertificateSource } = await import(dist('sidecar/proxy/sources/standalone.js'));
  const { pino } = await import('pino');
  const logger = pino({ level: 'info' }, pino.destination({ dest: '/dev/null', sync: false, minLength: 4096 }));
  const handle = await startProxy({
    certificates: new LocalCaCertificateSource(join(dir, 'ca')),
    policy: new FilePolicySource(policyFile),
    bundleDir: join(dir, `bundle-${process.pid}`),
    capturePort: 0,
    adminPort: 0,
    listenAddresses: ['127.0.0.1'],
    adminAddress: '127.0.0.1',
    resolve: { [HOST]: { host: '127.0.0.1', port: upstreamPort } },
    upstreamCa: readFileSync(join(dir, 'root.crt'), 'utf8'),
    logger,
  });
  await handle.ready;
  process.send({ port: handle.capturePort });
}

const now = () => performance.timeOrigin + performance.now();
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const p90 = (xs) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * 0.9))];

/** The fake provider: records when it sent each event of each stream (by the request's x-bench-id). */
function upstream(dir, sent) {
  const server = createServer({ cert: readFileSync(join(dir, 'leaf.crt')), key: readFileSync(join(dir, 'leaf.key')), keepAliveTimeout: 120_000 }, (req, res) => {
    req.resume();
    req.on('end', async () => {
      const id = String(req.headers['x-bench-id']);
      const times = [];
      sent.set(id, times);
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      for (let i = 0; i < EVENTS; i++) {
        if (i > 0) await sleep(GAP);
        times.push(now());
        res.write(`data: ${JSON.stringify({ id: 'chatcmpl-b', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o', choices: [{ index: 0, delta: { content: TEXTS[i] }, finish_reason: null }] })}\n\n`);
      }
      res.write(`data: ${JSON.stringify({ id: 'chatcmpl-b', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o', choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] })}\n\n`);
      res.end('data: [DONE]\n\n');
    });
  });
  return new Promise((r) => server.listen(0, '127.0.0.1', () => r(server)));
}

/** One stream read by the app: arrival of the first event, and of each character of content. */
function stream(agent, port, id) {
  return new Promise((resolve, reject) => {
    const t0 = now();
    let firstEvent;
    let buf = '';
    const charAt = []; // arrival time of each content character, in order
    const req = request({ host: '127.0.0.1', port, servername: HOST, path: '/v1/chat/completions', method: 'POST', agent, headers: { host: HOST, 'content-type': 'application/json', authorization: 'Bearer sk-bench', 'x-bench-id': id, 'content-length': Buffer.byteLength(REQUEST) } }, (res) => {
      if (res.statusCode !== 200) reject(new Error(`status ${res.statusCode}`));
      res.setEncoding('utf8');
      res.on('data', (chunk) => {
        const t = now();
        buf += chunk;
        let end;
        while ((end = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, end);
          buf = buf.slice(end + 2);
          firstEvent ??= t;
          const data = block.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
          if (!data || data === '[DONE]') continue;
          const text = JSON.parse(data).choices?.[0]?.delta?.content ?? '';
          for (let i = 0; i < text.length; i++) charAt.push(t);
        }
      });
      res.on('end', () => resolve({ t0, firstEvent, charAt }));
    });
    req.on('error', reject);
    req.end(REQUEST);
  });
}

async function measure(name, port, caPem, sent) {
  const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: caPem });
  for (let i = 0; i < 3; i++) await stream(agent, port, `${name}-warm-${i}`);
  const first = [];
  const firstText = [];
  const delays = [];
  for (let i = 0; i < STREAMS; i++) {
    const id = `${name}-${i}`;
    const r = await stream(agent, port, id);
    const times = sent.get(id);
    first.push(r.firstEvent - r.t0);
    firstText.push(r.charAt[0] - r.t0);
    // Where each provider event's text ends in what the app reads. Restored, "[EMAIL_1]" (split over events 10
    // and 11) is the address, and event 10's text is complete only with event 11's.
    const restored = r.charAt.length === TEXTS.join('').length + EMAIL.length - '[EMAIL_1]'.length;
    const appTexts = restored ? TEXTS.map((t, e) => (e === 10 ? ' ' : e === 11 ? EMAIL : t)) : TEXTS;
    const ends = [];
    let pos = 0;
    for (const t of appTexts) ends.push((pos += t.length));
    if (restored) ends[10] = ends[11];
    if (pos !== r.charAt.length) throw new Error(`${name}: the app read ${r.charAt.length} characters, expected ${pos}`);
    for (let e = 0; e < EVENTS; e++) delays.push(r.charAt[ends[e] - 1] - times[e]);
  }
  agent.destroy();
  return { name, first: median(first), firstP90: p90(first), firstText: median(firstText), firstTextP90: p90(firstText), delay: median(delays), delayP90: p90(delays) };
}

function child(dir, upstreamPort, policyFile) {
  const p = fork(fileURLToPath(import.meta.url), ['--role', 'proxy', dir, String(upstreamPort), policyFile], { stdio: 'inherit' });
  return new Promise((resolve) => p.once('message', (m) => resolve({ proc: p, ...m })));
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'aigress-filters-latency-'));
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
  const sent = new Map();
  const server = await upstream(dir, sent);
  const upstreamPort = server.address().port;
  // a local guard that allows everything, over plain HTTP
  const guard = createHttp((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"action":"allow"}'));
  });
  await new Promise((r) => guard.listen(0, '127.0.0.1', r));
  const guardUrl = `http://127.0.0.1:${guard.address().port}/check`;

  const rows = [await measure('direct', upstreamPort, root.certPem, sent)];
  for (const [name, filters] of FILTER_SETS) {
    const file = join(dir, `policy-${rows.length}.yaml`);
    const spec = { providers: ['openai'], filters: JSON.parse(JSON.stringify(filters).replaceAll('"GUARD"', JSON.stringify(guardUrl))) };
    writeFileSync(file, JSON.stringify({ apiVersion: 'aigress.io/v1alpha1', kind: 'EgressPolicy', metadata: { name: 'bench' }, spec }));
    const proxy = await child(dir, upstreamPort, file);
    try {
      rows.push(await measure(name, proxy.port, ca.certPem, sent));
    } finally {
      proxy.proc.kill();
    }
  }
  server.closeAllConnections();
  server.close();
  guard.close();

  const f = (x) => x.toFixed(2).padStart(7);
  const d = rows[0];
  console.log(`${STREAMS} streams of ${EVENTS} SSE events, one every ${GAP} ms (5 characters each), TLS on both sides, keep-alive; medians (p90) in ms`);
  console.log(`${'path'.padEnd(46)} ${'first event'.padStart(18)} ${'added'.padStart(7)}   ${'first text'.padStart(18)} ${'added'.padStart(7)}   ${'text delay'.padStart(18)} ${'added'.padStart(7)}`);
  for (const r of rows) {
    console.log(
      `${r.name.padEnd(46)} ${f(r.first)} (${f(r.firstP90)}) ${f(r.first - d.first)}   ${f(r.firstText)} (${f(r.firstTextP90)}) ${f(r.firstText - d.firstText)}   ${f(r.delay)} (${f(r.delayP90)}) ${f(r.delay - d.delay)}`,
    );
  }
}

if (args.role === 'proxy') await proxyRole(process.argv[4], Number(process.argv[5]), process.argv[6]);
else await main();
