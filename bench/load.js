// The load generator: keep-alive HTTPS (or HTTP for a peer that only speaks it to clients) over undici Pools.
//
// Open loop does not coordinate-omit: request i is due at start + i/rate whatever happened before it, and its
// latency runs from that intended send time to the last byte of the answer, so a stalled proxy is charged for
// every request that should have gone out meanwhile. Requests still unanswered a grace period after the last one
// was due count as lost; more than 1 % lost makes the run "saturated" and its percentiles meaningless.

import { Buffer } from 'node:buffer';
import { connect as tlsConnect } from 'node:tls';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { HOST } from './pki.js';

const GRACE_MS = 3_000;

/**
 * target: { port, tls: boolean, ca?: string, headers?: object, hostHeader?: string }. With TLS the client dials
 * 127.0.0.1:port with SNI api.openai.com and verifies the chain against `ca`.
 */
export async function createClient(target, connections) {
  const { Pool, buildConnector } = await import('undici');
  const headers = { 'content-type': 'application/json', authorization: 'Bearer sk-bench', host: target.hostHeader ?? HOST, ...(target.headers ?? {}) };
  let pool;
  if (target.tls) {
    const base = buildConnector({ ca: target.ca, timeout: 10_000 });
    pool = new Pool(`https://${HOST}`, {
      connections,
      keepAliveTimeout: 60_000,
      connect: (o, cb) => base({ ...o, hostname: '127.0.0.1', port: String(target.port), servername: HOST }, cb),
      headersTimeout: 60_000,
      bodyTimeout: 60_000,
    });
  } else {
    pool = new Pool(`http://127.0.0.1:${target.port}`, { connections, keepAliveTimeout: 60_000, headersTimeout: 60_000, bodyTimeout: 60_000 });
  }
  return { pool, headers, path: target.path ?? '/v1/chat/completions' };
}

/** A chat-completions request of about `size` bytes asking for an answer of about `answerSize` bytes. */
export function requestBody(size = 1024, answerSize = 1024, extra = {}) {
  const frame = { model: 'gpt-4o', messages: [{ role: 'user', content: '' }], user: `size=${answerSize}`, ...extra };
  const overhead = Buffer.byteLength(JSON.stringify(frame));
  frame.messages[0].content = 'hello '.repeat(Math.max(0, Math.floor((size - overhead) / 6)));
  return JSON.stringify(frame);
}

async function once(client, body) {
  const r = await client.pool.request({ method: 'POST', path: client.path, headers: client.headers, body });
  const buf = Buffer.from(await r.body.arrayBuffer());
  if (r.statusCode !== 200) throw new Error(`status ${r.statusCode}: ${buf.toString('utf8').slice(0, 200)}`);
  return buf.length;
}

/** One request that must succeed: a path that fails it is skipped with the reason. */
export async function smoke(client, body = requestBody()) {
  return once(client, body);
}

export function percentile(sorted, q) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

export async function warmUp(client, n, concurrency, body = requestBody()) {
  for (let i = 0; i < n; i += concurrency) await Promise.all(Array.from({ length: concurrency }, () => once(client, body).catch(() => undefined)));
}

/** Open loop at `rate` req/s for `seconds`; latencies in ms from the intended send time. */
export async function openLoop(client, { rate, seconds, body = requestBody() }) {
  const total = Math.round(rate * seconds);
  const latencies = [];
  let errors = 0;
  let firstError;
  const start = performance.now() + 5;
  let sent = 0;
  let outstanding = 0;
  let lateSends = 0;
  const settle = () => outstanding--;
  while (sent < total) {
    const now = performance.now();
    while (sent < total && start + (sent * 1000) / rate <= now) {
      const due = start + (sent * 1000) / rate;
      if (now - due > 5) lateSends++;
      sent++;
      outstanding++;
      once(client, body).then(
        () => latencies.push(performance.now() - due),
        (err) => {
          errors++;
          firstError ??= String(err?.message ?? err);
        },
      ).finally(settle);
    }
    const next = start + (sent * 1000) / rate - performance.now();
    await sleep(Math.max(0, Math.floor(next)));
  }
  const lastDue = start + ((total - 1) * 1000) / rate;
  while (outstanding > 0 && performance.now() < lastDue + GRACE_MS) await sleep(5);
  const elapsed = (Math.max(performance.now(), lastDue) - start) / 1000;
  const lost = outstanding;
  latencies.sort((a, b) => a - b);
  // saturated: requests lost or failed, or the answers could not keep up with the schedule
  const saturated = lost + errors > total * 0.01 || latencies.length / elapsed < rate * 0.95;
  return {
    rate,
    seconds,
    sent: total,
    ok: latencies.length,
    errors,
    lost,
    ...(firstError ? { firstError } : {}),
    lateSends,
    achievedRps: Math.round(latencies.length / elapsed),
    saturated,
    p50: percentile(latencies, 0.5),
    p90: percentile(latencies, 0.9),
    p99: percentile(latencies, 0.99),
    max: latencies.at(-1) ?? NaN,
  };
}

/** Closed loop: `concurrency` requests always in flight for `seconds`; completed requests per second. */
export async function closedLoop(client, { concurrency, seconds, body = requestBody() }) {
  let ok = 0;
  let errors = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  const worker = async () => {
    while (performance.now() < end) {
      try {
        await once(client, body);
        ok++;
      } catch {
        errors++;
        await sleep(10);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsed = (performance.now() - start) / 1000;
  return { concurrency, seconds, ok, errors, rps: Math.round(ok / elapsed) };
}

/** `n` requests one after another (no load): median and p90 latency, for the body-size curve. */
export async function sequential(client, n, body) {
  const times = [];
  let errors = 0;
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    try {
      await once(client, body);
      times.push(performance.now() - t0);
    } catch {
      errors++;
    }
  }
  times.sort((a, b) => a - b);
  return { n, errors, p50: percentile(times, 0.5), p90: percentile(times, 0.9) };
}

const SSE_BODY = JSON.stringify({ model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: 'stream please' }] });

/**
 * One SSE stream. The fake provider sends event 0, pauses, then the other 199: time to first event shows any
 * buffering; (last − second) / (events − 2) is the cost of passing one event on.
 */
export async function sseStream(client) {
  const t0 = performance.now();
  const r = await client.pool.request({ method: 'POST', path: client.path, headers: client.headers, body: SSE_BODY });
  if (r.statusCode !== 200) {
    await r.body.dump();
    throw new Error(`status ${r.statusCode}`);
  }
  let text = '';
  let seen = 0;
  let first = NaN;
  let second = NaN;
  let last = NaN;
  for await (const chunk of r.body) {
    text += chunk.toString('utf8');
    let idx;
    while ((idx = text.indexOf('\n\n')) >= 0) {
      const ev = text.slice(0, idx);
      text = text.slice(idx + 2);
      if (!ev.includes('"tok')) continue;
      seen++;
      const now = performance.now();
      if (seen === 1) first = now - t0;
      if (seen === 2) second = now;
      last = now;
    }
  }
  if (seen < 3) throw new Error(`only ${seen} events`);
  return { events: seen, firstMs: first, perEventMs: (last - second) / (seen - 2) };
}

/** Summary of a list of sseStream results (and failures). */
export function sseSummary(samples, errors) {
  const firsts = samples.map((x) => x.firstMs).sort((a, b) => a - b);
  const spans = samples.map((x) => x.perEventMs).sort((a, b) => a - b);
  return { streams: samples.length + errors, errors, events: samples[0]?.events ?? 0, ttfeP50: percentile(firsts, 0.5), ttfeP99: percentile(firsts, 0.99), perEventMs: percentile(spans, 0.5) };
}

/** Full TLS handshakes (no session resumption) per second against 127.0.0.1:port with SNI api.openai.com. */
export async function handshakes(port, ca, { seconds, concurrency = 8, servername = HOST }) {
  let ok = 0;
  let errors = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  const one = () =>
    new Promise((resolve) => {
      const s = tlsConnect({ host: '127.0.0.1', port, servername, ca, ALPNProtocols: ['http/1.1'] }, () => {
        ok++;
        s.destroy();
        resolve();
      });
      s.once('error', () => {
        errors++;
        s.destroy();
        resolve();
      });
    });
  const worker = async () => {
    while (performance.now() < end) await one();
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { ok, errors, perSecond: Math.round(ok / ((performance.now() - start) / 1000)) };
}
