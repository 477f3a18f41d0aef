import { Client, Pool, buildConnector, type Dispatcher } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildPipeline } from '../../sidecar/pipeline/index.js';
import { fdsSettle, openFds } from '../support/resources.js';
import { createTestPki, fakeUpstream, startTestProxy, type TestPki, type TestProxy } from '../unit/proxy/support.js';

// The short soak (`npm run soak` is the long one, through the CLI process): 5,000 requests, JSON answers and
// SSE streams mixed, some on fresh connections, through one proxy with the real pipeline. Every request must
// succeed whole, and once the clients are gone the process must hold no more handles or descriptors than it
// did after the warm-up: a per-request leak of either shows up as thousands here. (Memory is left to the long
// soak: over 5,000 requests V8's heap sizing is noise.)

const OPENAI = 'api.openai.com';
const WARMUP = 500;
const REQUESTS = 5_000;
const STREAM_EVERY = 4;
const FRESH_EVERY = 50;
const EVENTS = 12;

const activeHandles = (): number => (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles().length;

let pki: TestPki;
let proxy: TestProxy;
let closeUpstream: () => Promise<void>;
let connect: buildConnector.connector;

beforeAll(async () => {
  pki = await createTestPki();
  const answer = JSON.stringify({ id: 'x', object: 'chat.completion', model: 'gpt-4o', choices: [{ index: 0, message: { role: 'assistant', content: 'x'.repeat(500) }, finish_reason: 'stop' }], usage: { prompt_tokens: 5, completion_tokens: 5, total_tokens: 10 } });
  const up = await fakeUpstream(pki, OPENAI, (req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      if (!body.includes('"stream":true')) {
        res.writeHead(200, { 'content-type': 'application/json' });
        return void res.end(answer);
      }
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      let i = 0;
      const next = (): void => {
        if (res.destroyed) return;
        if (i === EVENTS) return void res.end('data: [DONE]\n\n');
        res.write(`data: ${JSON.stringify({ id: 'x', object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content: `t${i++} ` } }] })}\n\n`);
        setImmediate(next);
      };
      next();
    });
  });
  closeUpstream = up.close;
  proxy = await startTestProxy(pki, { buildPipeline, resolve: { [OPENAI]: { host: '127.0.0.1', port: up.port } } });
  await proxy.handle.ready;
  const base = buildConnector({ ca: pki.caPem });
  connect = (o, cb) => base({ ...o, hostname: '127.0.0.1', port: String(proxy.handle.capturePort), servername: OPENAI }, cb);
});
afterAll(async () => {
  await proxy.handle.close();
  await closeUpstream();
});

async function one(d: Dispatcher, stream: boolean): Promise<void> {
  const r = await d.request({
    method: 'POST',
    path: '/v1/chat/completions',
    headers: { host: OPENAI, 'content-type': 'application/json', authorization: 'Bearer sk-test' },
    body: JSON.stringify({ model: 'gpt-4o', stream, messages: [{ role: 'user', content: 'hello '.repeat(50) }] }),
  });
  const text = await r.body.text();
  if (r.statusCode !== 200) throw new Error(`status ${r.statusCode}`);
  if (stream) {
    const events = text.split('\n\n').filter(Boolean);
    if (events.length !== EVENTS + 1 || events.at(-1) !== 'data: [DONE]') throw new Error(`stream of ${events.length} events`);
  } else if ((JSON.parse(text) as { usage?: unknown }).usage === undefined) throw new Error('answer without usage');
}

async function drive(count: number, errors: string[]): Promise<void> {
  const pool = new Pool(`https://${OPENAI}`, { connections: 8, connect });
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      const fresh = i % FRESH_EVERY === FRESH_EVERY - 1;
      const d = fresh ? new Client(`https://${OPENAI}`, { connect }) : pool;
      try {
        await one(d, i % STREAM_EVERY === 0);
      } catch (err) {
        errors.push((err as Error).message);
      } finally {
        if (fresh) await d.close();
      }
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  await pool.close();
}

/** Handles and fds with the clients gone: the lowest of a few looks once the sockets have closed. */
async function idle(limitFds: number): Promise<{ handles: number; fds: number }> {
  const fds = await fdsSettle(limitFds);
  let handles = activeHandles();
  for (let i = 0; i < 10; i++) {
    await new Promise((r) => setTimeout(r, 50));
    handles = Math.min(handles, activeHandles());
  }
  return { handles, fds: Math.min(fds, openFds()) };
}

describe('short soak', () => {
  it(`${REQUESTS} requests (JSON and SSE mixed, every ${FRESH_EVERY}th on a new connection): no error, no growth in handles or fds`, async () => {
    const errors: string[] = [];
    await drive(WARMUP, errors);
    const before = await idle(0);
    await drive(REQUESTS - WARMUP, errors);
    const after = await idle(before.fds);
    expect(errors).toEqual([]);
    // the upstream keep-alive pool may hold a few more or fewer connections (both ends live in this process)
    expect(after.handles).toBeLessThanOrEqual(before.handles + 8);
    expect(after.fds).toBeLessThanOrEqual(before.fds + 8);
  });
});
