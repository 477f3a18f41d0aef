// type: external: a real local HTTP guard; allow, deny, rewrite, timeout, refused, 5xx, garbage, both modes.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { buildPipeline } from '../../../../sidecar/pipeline/index.js';
import { STREAM_MAX_WAIT_MS } from '../../../../sidecar/pipeline/filters/external.js';
import { exchange, metric, policy, respond, runRequest, services, withRegistry } from '../harness.js';
import { JSON_H, SSE_H, filterSetup, openAiStreamText, send, sseBody } from './support.js';

const CHAT = '/v1/chat/completions';
type Handler = (env: { phase: string; segments: { id: string; text: string }[] }, req: IncomingMessage) => { status?: number; body: string; delayMs?: number };

let server: Server;
let base = '';
let handler: Handler = () => ({ body: '{"action":"allow"}' });
const seen: { headers: IncomingMessage['headers']; body: Record<string, unknown>; socket: number }[] = [];
const sockets = new Map<unknown, number>();

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString()) as Record<string, unknown>;
      if (!sockets.has(req.socket)) sockets.set(req.socket, sockets.size + 1);
      seen.push({ headers: req.headers, body, socket: sockets.get(req.socket)! });
      const a = handler(body as never, req);
      setTimeout(() => {
        res.writeHead(a.status ?? 200, { 'content-type': 'application/json' });
        res.end(a.body);
      }, a.delayMs ?? 0);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => {
  server.closeAllConnections();
  server.close();
});

const body = { model: 'gpt-4o', messages: [{ role: 'user', content: 'hello guard' }] };
const guard = (extra: Record<string, unknown> = {}) => ({ type: 'external', name: 'guard', url: `${base}/check`, timeout: '300ms', ...extra });

describe('external guard', () => {
  it('allow: sends the documented envelope and never the app’s credentials; keeps the connection alive', async () => {
    handler = () => ({ body: '{"action":"allow"}' });
    seen.length = 0;
    const s = filterSetup([guard()]);
    for (let i = 0; i < 6; i++) {
      const { verdict } = await send(s, 'api.openai.com', CHAT, body, { authorization: 'Bearer sk-app-secret' });
      expect(verdict).toEqual({ action: 'continue' });
    }
    expect(seen[0]!.body).toEqual({
      version: 'aigress.io/filter/v1', filter: 'guard', phase: 'request', provider: 'openai', operation: 'chat', model: 'gpt-4o',
      identity: { namespace: 'team-a', pod: 'chat-7d9f-abcde', serviceAccount: 'chat', workload: 'chat' },
      segments: [{ id: 'messages.0.content', role: 'user', kind: 'text', text: 'hello guard' }],
    });
    expect(JSON.stringify(seen)).not.toContain('sk-app-secret');
    // kept alive: six calls do not open six connections
    expect(new Set(seen.map((x) => x.socket)).size).toBeLessThan(seen.length);
    expect(seen.every((x) => x.headers.connection === 'keep-alive')).toBe(true);
    await s.pipeline.close();
  });

  it('deny: 403 with the guard’s reason; rewrite: the provider gets the new text', async () => {
    handler = () => ({ body: '{"action":"deny","reason":"topic not allowed"}' });
    const s = filterSetup([guard()]);
    const d = await send(s, 'api.openai.com', CHAT, body);
    expect(d.verdict).toMatchObject({ action: 'deny', status: 403, message: 'aigress: filter guard (external) denied: topic not allowed' });
    handler = (env) => ({ body: JSON.stringify({ action: 'rewrite', segments: [{ id: env.segments[0]!.id, text: 'hello [checked]' }] }) });
    const r = await send(s, 'api.openai.com', CHAT, body);
    expect(JSON.parse(r.sent).messages[0].content).toBe('hello [checked]');
    await s.pipeline.close();
  });

  const failures: [string, () => ReturnType<Handler> | 'refused'][] = [
    ['timeout', () => ({ body: '{"action":"allow"}', delayMs: 1000 })],
    ['5xx', () => ({ status: 502, body: 'bad gateway' })],
    ['garbage', () => ({ body: 'not json at all' })],
    ['wrong shape', () => ({ body: '{"action":"maybe"}' })],
    ['connection refused', () => 'refused'],
  ];
  for (const [name, make] of failures) {
    it(`${name}: FailClosed → 503 naming the filter, FailOpen → on, counted`, async () => {
      const a = make();
      const url = a === 'refused' ? 'http://127.0.0.1:1/check' : `${base}/check`;
      if (a !== 'refused') handler = () => a;
      const closed = filterSetup([guard({ url })]);
      const c = await send(closed, 'api.openai.com', CHAT, body);
      expect(c.verdict).toMatchObject({ action: 'deny', status: 503, kind: 'unavailable', reason: 'filter_failed' });
      expect((c.verdict as { message: string }).message).toMatch(/filter guard \(external\) could not decide .*nothing was sent/);
      expect(await metric(closed.registry, 'aigress_filter_failures_total', { filter: 'guard', mode: 'closed' })).toBe(1);
      const open = filterSetup([guard({ url, failureMode: 'FailOpen' })]);
      const o = await send(open, 'api.openai.com', CHAT, body);
      expect(o.verdict).toEqual({ action: 'continue' });
      expect(o.ex.actions).toContainEqual(expect.objectContaining({ processor: 'guard', action: 'failed-open' }));
      expect(await metric(open.registry, 'aigress_filter_failures_total', { filter: 'guard', mode: 'open' })).toBe(1);
      await closed.pipeline.close();
      await open.pipeline.close();
    });
  }

  it('the app leaving mid-call ends the exchange without counting a guard failure', async () => {
    handler = () => ({ body: '{"action":"allow"}', delayMs: 250 });
    const open = filterSetup([guard({ failureMode: 'FailOpen' })]);
    const ac = new AbortController();
    const pending = runRequest(open.pipeline, exchange(open.p, 'api.openai.com', CHAT, body, { signal: ac.signal }));
    setTimeout(() => ac.abort(), 50);
    const r = await pending;
    expect(r.gone).toBe(true);
    await new Promise((res) => setTimeout(res, 300)); // the cut call has settled by now
    expect(await metric(open.registry, 'aigress_filter_failures_total', { filter: 'guard', mode: 'open' })).toBe(0);
    expect(r.ex.actions.filter((a) => a.action === 'failed-open')).toEqual([]);
    await open.pipeline.close();
  });

  it('the timeout fires even when a garbage collection runs while the guard is thinking', async () => {
    // AbortSignal.any over AbortSignal.timeout lost its deadline to a GC on Node 20 (the guard's late "allow" was
    // taken); a collection forced mid-call must not change the verdict
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    handler = () => ({ body: '{"action":"allow"}', delayMs: 1000 });
    const closed = filterSetup([guard()]);
    const pending = send(closed, 'api.openai.com', CHAT, body);
    await new Promise((r) => setTimeout(r, 50));
    gc();
    const c = await pending;
    expect(c.verdict).toMatchObject({ action: 'deny', status: 503, reason: 'filter_failed' });
    expect((c.verdict as { message: string }).message).toContain('no answer within 300 ms');
    await closed.pipeline.close();
  });

  it('response phase: judges a JSON answer, and a stream in windows (deny ends it the provider’s way)', async () => {
    handler = (env) => (env.segments.some((x) => x.text.includes('forbidden')) ? { body: '{"action":"deny","reason":"no"}' } : { body: '{"action":"allow"}' });
    const s = filterSetup([guard({ phase: 'response' })]);
    const { ex } = await send(s, 'api.openai.com', CHAT, body);
    const ok = await respond(s.pipeline, ex, 200, JSON_H, [Buffer.from(JSON.stringify({ choices: [{ index: 0, message: { role: 'assistant', content: 'fine' } }] }))]);
    for (let i = 0; i < 100 && !ok.ended; i++) await new Promise((r) => setTimeout(r, 5));
    expect(JSON.parse(ok.body.toString()).choices[0].message.content).toBe('fine');
    const chunk = (content: string) => ({ choices: [{ index: 0, delta: { content } }] });
    const { ex: ex2 } = await send(s, 'api.openai.com', CHAT, { ...body, stream: true });
    const got = await respond(s.pipeline, ex2, 200, SSE_H, [sseBody([chunk('all '), chunk('good'), '[DONE]'])]);
    for (let i = 0; i < 100 && !got.ended; i++) await new Promise((r) => setTimeout(r, 5));
    expect(openAiStreamText(got.body)).toBe('all good');
    const { ex: ex3 } = await send(s, 'api.openai.com', CHAT, { ...body, stream: true });
    const bad = await respond(s.pipeline, ex3, 200, SSE_H, [sseBody([chunk('this is forb'), chunk('idden'), '[DONE]'])]);
    for (let i = 0; i < 100 && !bad.ended; i++) await new Promise((r) => setTimeout(r, 5));
    expect(bad.body.toString()).not.toContain('forb');
    expect(bad.body.toString()).toContain('guard (external) denied: no');
    await s.pipeline.close();
  });

  it('a response-phase failure that fails closed says the request reached the provider, not that nothing was sent', async () => {
    handler = (env) => (env.phase === 'response' ? { status: 502, body: 'down' } : { body: '{"action":"allow"}' });
    const s = filterSetup([guard({ phase: 'response' })]);
    const { ex } = await send(s, 'api.openai.com', CHAT, body);
    const got = await respond(s.pipeline, ex, 200, JSON_H, [Buffer.from(JSON.stringify({ choices: [{ index: 0, message: { role: 'assistant', content: 'fine' } }] }))]);
    for (let i = 0; i < 100 && !got.ended; i++) await new Promise((r) => setTimeout(r, 5));
    const out = got.denied?.message ?? '';
    expect(got.denied).toMatchObject({ status: 503, reason: 'filter_failed' });
    expect(out).toContain('filter guard (external) could not decide (guard answered 502) and fails closed; the request had reached the provider');
    expect(out).not.toContain('nothing was sent');
    expect(out).not.toContain('fine');
    await s.pipeline.close();
  });

  it('a response rewrite naming an id the guard was not sent is a failure, as on the request side (JSON and stream, both modes)', async () => {
    handler = (env) => (env.phase === 'response' ? { body: JSON.stringify({ action: 'rewrite', segments: [{ id: 'no-such-id', text: 'X' }] }) } : { body: '{"action":"allow"}' });
    const res = Buffer.from(JSON.stringify({ choices: [{ index: 0, message: { role: 'assistant', content: 'fine' } }] }));
    const chunk = (content: string) => ({ choices: [{ index: 0, delta: { content } }] });
    const stream = sseBody([chunk('all '), chunk('good'), '[DONE]']);
    const wait = async (g: { ended: boolean }) => {
      for (let i = 0; i < 100 && !g.ended; i++) await new Promise((r) => setTimeout(r, 5));
    };
    const closed = filterSetup([guard({ phase: 'response' })]);
    const c = await respond(closed.pipeline, (await send(closed, 'api.openai.com', CHAT, body)).ex, 200, JSON_H, [res]);
    await wait(c);
    expect(c.denied).toMatchObject({ status: 503, reason: 'filter_failed' });
    expect(c.denied!.message).toContain('guard rewrote a segment id it was not sent');
    const cs = await respond(closed.pipeline, (await send(closed, 'api.openai.com', CHAT, { ...body, stream: true })).ex, 200, SSE_H, [stream]);
    await wait(cs);
    expect(cs.body.toString()).toContain('guard rewrote a segment id it was not sent');
    expect(cs.body.toString()).not.toContain('good');
    expect(await metric(closed.registry, 'aigress_filter_failures_total', { filter: 'guard', mode: 'closed' })).toBe(2);

    const open = filterSetup([guard({ phase: 'response', failureMode: 'FailOpen' })]);
    const { ex } = await send(open, 'api.openai.com', CHAT, body);
    const o = await respond(open.pipeline, ex, 200, JSON_H, [res]);
    await wait(o);
    expect(JSON.parse(o.body.toString()).choices[0].message.content).toBe('fine');
    expect(ex.actions).toContainEqual(expect.objectContaining({ processor: 'guard', phase: 'response', action: 'failed-open' }));
    const os = await respond(open.pipeline, (await send(open, 'api.openai.com', CHAT, { ...body, stream: true })).ex, 200, SSE_H, [stream]);
    await wait(os);
    expect(openAiStreamText(os.body)).toBe('all good');
    expect(await metric(open.registry, 'aigress_filter_failures_total', { filter: 'guard', mode: 'open' })).toBe(2);
    await closed.pipeline.close();
    await open.pipeline.close();
  });

  it('a slow stream is judged in windows of at most STREAM_MAX_WAIT_MS, not held until 512 characters came', async () => {
    const windows: string[] = [];
    handler = (env) => {
      windows.push(env.segments.map((x) => x.text).join(''));
      return { body: '{"action":"allow"}' };
    };
    // a clock that moves 150 ms each time it is read: a window closes on its second or third event
    let t = 0;
    const registry = new Registry();
    const p = policy({ filters: [guard({ phase: 'response' })] });
    const pipeline = withRegistry(buildPipeline(p, { ...services(registry), now: () => (t += 150) }), registry);
    const { ex } = await runRequest(pipeline, exchange(p, 'api.openai.com', CHAT, { ...body, stream: true }));
    const chunk = (content: string) => ({ choices: [{ index: 0, delta: { content } }] });
    const got = await respond(pipeline, ex, 200, SSE_H, [sseBody([chunk('one '), chunk('two '), chunk('three '), chunk('four '), chunk('five'), '[DONE]'])]);
    for (let i = 0; i < 100 && !got.ended; i++) await new Promise((r) => setTimeout(r, 5));
    expect(openAiStreamText(got.body)).toBe('one two three four five');
    expect(STREAM_MAX_WAIT_MS).toBeLessThan(300);
    // without the cap the 24 characters would be one window, judged at the end of the stream
    expect(windows.length).toBeGreaterThan(1);
    expect(windows.join('')).toBe('one two three four five');
    await pipeline.close();
  });
});
