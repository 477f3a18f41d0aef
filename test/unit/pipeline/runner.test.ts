// The processor runner: phases, failure modes, deadlines, the final upstream request, and response plans with
// back pressure. Each case here failed on the seam that preceded the runner (see the pipeline issue).
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { buildPipeline, pipelineOf, type Exchange, type Processor, type StreamEvent } from '../../../sidecar/pipeline/index.js';
import { eventJson, sseEvent } from '../../../sidecar/pipeline/framing.js';
import { ExchangeAbort } from '../../../sidecar/pipeline/runner.js';
import { collectingSink, exchange, metric, policy, respond, runnerFor, runRequest, services, withRegistry } from './harness.js';

const SSE_H = { 'content-type': 'text/event-stream' };
const CHAT = '/v1/chat/completions';
const step = (p: Partial<Processor> & Pick<Processor, 'name' | 'phase'>): Processor => ({ type: 'test', ...p });

function sse(...datas: string[]): Buffer {
  return Buffer.from(datas.map((d) => `data: ${d}\n\n`).join(''));
}

describe('the request phases', () => {
  it('a rewrite before openai-stream-usage reaches the provider rewritten (no stale parsed body)', async () => {
    const p = policy();
    const registry = new Registry();
    const real = buildPipeline(p, services(registry)).processors;
    const redact = step({
      name: 'redact',
      phase: 'transform',
      onRequest(ex) {
        ex.request.body.edit((j) => {
          const msgs = j.messages as { content: string }[];
          for (const m of msgs) m.content = m.content.replaceAll('ada@example.com', '[EMAIL_1]');
        });
        return { action: 'continue' };
      },
    });
    const list = [...real];
    list.splice(list.findIndex((x) => x.name === 'openai-stream-usage'), 0, redact);
    const pipeline = withRegistry(pipelineOf(list), registry);
    // `stream_options: {}` makes the usage step merge into the parsed body rather than insert text.
    for (const extra of [{ stream_options: {} }, {}]) {
      const body = { model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: 'mail ada@example.com' }], ...extra };
      const { verdict, ex } = await runRequest(pipeline, exchange(p, 'api.openai.com', CHAT, body));
      expect(verdict.action).toBe('continue');
      const sent = JSON.parse(ex.request.body.bytes().toString()) as { messages: { content: string }[]; stream_options: unknown };
      expect(sent.messages[0]!.content).toBe('mail [EMAIL_1]');
      expect(sent.stream_options).toEqual({ include_usage: true });
      expect(ex.request.body.bytes().includes('ada@example.com')).toBe(false);
      expect(ex.request.headers.get('content-length')).toBe(String(ex.request.body.length));
    }
  });

  it('leaves a body nobody changed byte for byte, and its length header alone', async () => {
    const p = policy();
    const s = withRegistry(buildPipeline(p, services()), new Registry());
    const raw = Buffer.from('{ "model" : "gpt-4o",\n  "messages": [] }');
    const { ex } = await runRequest(s, exchange(p, 'api.openai.com', CHAT, raw));
    expect(ex.request.body.changed).toBe(false);
    expect(ex.request.body.bytes().equals(raw)).toBe(true);
  });

  it('sign sees exactly what goes on the wire: the final body, its length and every header set before it', async () => {
    let signed: { method: string; path: string; headers: [string, string][]; body: string } | undefined;
    const pipeline = pipelineOf([
      step({ name: 'sign', phase: 'sign', onRequest(ex) {
        signed = { method: ex.request.method, path: ex.request.path, headers: ex.request.headers.entries().map(([k, v]) => [k, v]), body: ex.request.body.bytes().toString() };
        ex.request.headers.set('x-signature', `sig(${signed.body.length})`);
        return { action: 'continue' };
      } }),
      step({ name: 'cred', phase: 'credentials', onRequest(ex) {
        ex.request.headers.delete('authorization');
        ex.request.headers.set('authorization', 'Bearer managed');
        ex.request.path = ex.request.path.replace('?key=app', '');
        return { action: 'continue' };
      } }),
      step({ name: 'grow', phase: 'transform', onRequest(ex) {
        ex.request.body.edit((j) => {
          j.user = 'team-a/chat';
        });
        return { action: 'continue' };
      } }),
    ]);
    const p = policy();
    const { ex } = await runRequest(pipeline, exchange(p, 'api.openai.com', `${CHAT}?key=app`, { model: 'gpt-4o' }, { headers: { authorization: 'Bearer app' } }));
    expect(signed!.body).toBe('{"model":"gpt-4o","user":"team-a/chat"}');
    expect(signed!.path).toBe(CHAT);
    const h = Object.fromEntries(signed!.headers);
    expect(h['content-length']).toBe(String(signed!.body.length));
    expect(h.authorization).toBe('Bearer managed');
    expect(ex.request.headers.get('x-signature')).toBe(`sig(${signed!.body.length})`);
    expect(ex.request.body.bytes().toString()).toBe(signed!.body);
  });

  it('a processor past its timeout follows its failure mode: closed refuses with 503, open skips it', async () => {
    const registry = new Registry();
    const hang = (failureMode: 'closed' | 'open'): Processor =>
      step({ name: `guard-${failureMode}`, phase: 'transform', failureMode, timeoutMs: 30, onRequest: () => new Promise(() => {}) });
    const p = policy();
    const closed = withRegistry(pipelineOf([hang('closed')]), registry);
    const r1 = await runRequest(closed, exchange(p, 'api.openai.com', CHAT, { model: 'gpt-4o' }));
    expect(r1.verdict).toMatchObject({ action: 'deny', status: 503, kind: 'unavailable', reason: 'processor_failed' });
    expect((r1.verdict as { message: string }).message).toMatch(/guard-closed .*no answer within 30 ms.*nothing was sent/);
    const open = withRegistry(pipelineOf([hang('open')]), registry);
    const r2 = await runRequest(open, exchange(p, 'api.openai.com', CHAT, { model: 'gpt-4o' }));
    expect(r2.verdict).toEqual({ action: 'continue' });
    expect(r2.ex.actions).toContainEqual(expect.objectContaining({ processor: 'guard-open', action: 'failed-open' }));
    expect(await metric(registry, 'aigress_processor_failures_total', { processor: 'guard-closed', mode: 'closed' })).toBe(1);
    expect(await metric(registry, 'aigress_processor_failures_total', { processor: 'guard-open', mode: 'open' })).toBe(1);
  });

  it('a throw follows the failure mode too, in every phase', async () => {
    const p = policy();
    for (const phase of ['describe', 'admit', 'transform', 'credentials', 'sign'] as const) {
      const boom = step({ name: 'boom', phase, onRequest: () => { throw new Error('bug'); } });
      const r = await runRequest(withRegistry(pipelineOf([boom]), new Registry()), exchange(p, 'api.openai.com', CHAT, {}));
      expect(r.verdict, phase).toMatchObject({ action: 'deny', status: 503 });
    }
  });

  it('stops when the client has gone: nothing is forwarded', async () => {
    const ac = new AbortController();
    let later = false;
    const pipeline = withRegistry(pipelineOf([
      step({ name: 'slow', phase: 'admit', onRequest: () => new Promise((r) => setTimeout(() => r({ action: 'continue' }), 20)) }),
      step({ name: 'later', phase: 'transform', onRequest: () => ((later = true), { action: 'continue' }) }),
    ]), new Registry());
    const pending = runRequest(pipeline, exchange(policy(), 'api.openai.com', CHAT, {}, { signal: ac.signal }));
    ac.abort();
    const r = await pending;
    expect(r.gone).toBe(true);
    expect(later).toBe(false);
  });

  it("with the proxy's ExchangeAbort: a pending step is cut, and the signal it was handed fires", async () => {
    const abort = new ExchangeAbort();
    let seen: AbortSignal | undefined;
    let later = false;
    const pipeline = withRegistry(pipelineOf([
      step({ name: 'slow', phase: 'admit', onRequest: (ex) => ((seen = ex.signal), new Promise((r) => setTimeout(() => r({ action: 'continue' }), 20))) }),
      step({ name: 'later', phase: 'transform', onRequest: () => ((later = true), { action: 'continue' }) }),
    ]), new Registry());
    const pending = runRequest(pipeline, exchange(policy(), 'api.openai.com', CHAT, {}, { signal: abort }));
    expect(seen?.aborted).toBe(false);
    abort.abort();
    const r = await pending;
    expect(r.gone).toBe(true);
    expect(later).toBe(false);
    expect(seen?.aborted).toBe(true);
  });

  it("with the proxy's ExchangeAbort aborted before any step asked for the signal: nothing runs, the signal reads aborted", async () => {
    const abort = new ExchangeAbort();
    let ran = false;
    const pipeline = withRegistry(pipelineOf([step({ name: 'any', phase: 'admit', onRequest: () => ((ran = true), { action: 'continue' }) })]), new Registry());
    const ex = exchange(policy(), 'api.openai.com', CHAT, {}, { signal: abort });
    abort.abort();
    expect((await runRequest(pipeline, ex)).gone).toBe(true);
    expect(ran).toBe(false);
    expect(ex.signal.aborted).toBe(true);
  });

  it('audit mode records a denial as would-deny and lets the request go on', async () => {
    const registry = new Registry();
    const p = policy({ mode: 'audit', models: { allow: ['claude-*'] } });
    const pipeline = withRegistry(buildPipeline(p, services(registry)), registry);
    const { verdict, ex } = await runRequest(pipeline, exchange(p, 'api.openai.com', CHAT, { model: 'gpt-4o' }));
    expect(verdict).toEqual({ action: 'continue' });
    expect(ex.facts.wouldDeny).toBe('model_not_allowed');
    expect(ex.actions).toContainEqual(expect.objectContaining({ processor: 'models', action: 'would-deny', reason: 'model_not_allowed' }));
    expect(await metric(registry, 'aigress_denials_total', { reason: 'model_not_allowed', mode: 'audit' })).toBe(1);
    const enforce = policy({ models: { allow: ['claude-*'] } });
    const r = await runRequest(withRegistry(buildPipeline(enforce, services(registry)), registry), exchange(enforce, 'api.openai.com', CHAT, { model: 'gpt-4o' }));
    expect(r.verdict).toMatchObject({ action: 'deny', status: 403 });
    expect(await metric(registry, 'aigress_denials_total', { reason: 'model_not_allowed', mode: 'enforce' })).toBe(1);
  });
});

describe('the response plans', () => {
  const ex0 = async (pipeline: ReturnType<typeof pipelineOf>): Promise<Exchange> =>
    (await runRequest(pipeline, exchange(policy(), 'api.openai.com', CHAT, { model: 'gpt-4o', stream: true }))).ex;

  it('a throwing response transform fails closed: the stream ends with the provider’s error event and nothing after', async () => {
    const pipeline = withRegistry(pipelineOf([
      step({ name: 'filter', phase: 'transform', onResponse: () => ({
        event(ev) {
          if (ev.sse?.data.includes('bad')) throw new Error('filter bug');
          return [ev];
        },
      }) }),
    ]), new Registry());
    const got = await respond(pipeline, await ex0(pipeline), 200, SSE_H, [sse('{"a":"ok"}', '{"a":"bad"}', '{"a":"after"}', '[DONE]')]);
    const text = got.body.toString();
    expect(text.startsWith('data: {"a":"ok"}\n\n')).toBe(true);
    expect(text).toContain('"code":"aigress_unavailable"');
    expect(text).not.toContain('after');
    expect(text).not.toContain('[DONE]');
    expect(got.aborted).toBe(true);
    expect(got.ended).toBe(true);
  });

  it('a failed-open response transform passes the event it failed on', async () => {
    const pipeline = withRegistry(pipelineOf([
      step({ name: 'filter', phase: 'transform', failureMode: 'open', onResponse: () => ({
        event(ev) {
          if (ev.sse?.data.includes('bad')) throw new Error('filter bug');
          return [ev];
        },
      }) }),
    ]), new Registry());
    const body = sse('{"a":"ok"}', '{"a":"bad"}', '[DONE]');
    const got = await respond(pipeline, await ex0(pipeline), 200, SSE_H, [body]);
    expect(got.body.equals(body)).toBe(true);
  });

  it('a slow async transform pauses the upstream instead of buffering it, and keeps the order', async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    const pipeline = withRegistry(pipelineOf([
      step({ name: 'slow', phase: 'transform', onResponse: () => ({
        async event(ev) {
          inFlight++;
          maxInFlight = Math.max(maxInFlight, inFlight);
          await new Promise((r) => setTimeout(r, 5));
          inFlight--;
          const j = eventJson(ev) as { n?: number } | undefined;
          return j?.n !== undefined ? [sseEvent('message', JSON.stringify({ n: j.n * 10 }))] : [ev];
        },
      }) }),
    ]), new Registry());
    const ex = await ex0(pipeline);
    const runner = runnerFor(new Registry());
    let paused = false;
    let pauses = 0;
    const { sink, got } = collectingSink();
    sink.pauseUpstream = () => {
      paused = true;
      pauses++;
    };
    sink.resumeUpstream = () => {
      paused = false;
    };
    const driver = runner.response(pipeline, ex, { status: 200, headers: SSE_H }, sink);
    // Plays undici: a paused response delivers nothing until resumed.
    for (let n = 0; n < 20; n++) {
      while (paused) await new Promise((r) => setTimeout(r, 1));
      driver.data(sse(JSON.stringify({ n })));
    }
    driver.end();
    while (!got.ended) await new Promise((r) => setTimeout(r, 2));
    expect(pauses).toBeGreaterThanOrEqual(19);
    expect(maxInFlight).toBe(1);
    expect(got.body.toString()).toBe(Array.from({ length: 20 }, (_, n) => `data: {"n":${n * 10}}\n\n`).join(''));
  });

  it('holds a JSON response until its body is decided, and answers a response-phase denial in place of it', async () => {
    const pipeline = withRegistry(pipelineOf([
      step({ name: 'check', phase: 'transform', onResponse: () => ({
        body(b) {
          return b.bytes().includes('forbidden')
            ? { action: 'deny', kind: 'policy', status: 403, reason: 'blocked', message: 'aigress: blocked by check' }
            : { action: 'continue' };
        },
      }) }),
    ]), new Registry());
    const ex = await ex0(pipeline);
    const ok = await respond(pipeline, ex, 200, { 'content-type': 'application/json' }, [Buffer.from('{"x":'), Buffer.from('"fine"}')]);
    expect(ok.body.toString()).toBe('{"x":"fine"}');
    expect(ok.sized).toBe(true);
    const bad = await respond(pipeline, await ex0(pipeline), 200, { 'content-type': 'application/json' }, [Buffer.from('{"x":"forbidden"}')]);
    expect(bad.denied).toMatchObject({ status: 403, message: 'aigress: blocked by check' });
    expect(bad.body.length).toBe(0);
  });

  it('a transform may hold events back and release them later, or emit several for one', async () => {
    const held: StreamEvent[] = [];
    const pipeline = withRegistry(pipelineOf([
      step({ name: 'hold', phase: 'transform', onResponse: () => ({
        event(ev) {
          held.push(ev);
          return held.length === 2 ? held.splice(0) : [];
        },
        flush: () => held.splice(0),
      }) }),
    ]), new Registry());
    const body = sse('1', '2', '3');
    const got = await respond(pipeline, await ex0(pipeline), 200, SSE_H, [body]);
    expect(got.body.equals(body)).toBe(true);
  });
});

describe('read-only response hooks', () => {
  it('an observer that throws follows its failure mode: closed breaks the response, open lets it pass', async () => {
    const observer = (failureMode: 'closed' | 'open'): Processor =>
      step({ name: `obs-${failureMode}`, phase: 'transform', failureMode, onResponse: () => ({
        bytes() {
          throw new Error('observer bug');
        },
      }) });
    const body = Buffer.from('{"ok":true}');
    const p = policy();
    const closed = withRegistry(pipelineOf([observer('closed')]), new Registry());
    const ex1 = (await runRequest(closed, exchange(p, 'api.openai.com', CHAT, {}))).ex;
    const r1 = await respond(closed, ex1, 200, { 'content-type': 'application/json' }, [body]);
    expect(r1.destroyed).toBe(true);
    expect(r1.body.length).toBe(0);
    const open = withRegistry(pipelineOf([observer('open')]), new Registry());
    const ex2 = (await runRequest(open, exchange(p, 'api.openai.com', CHAT, {}))).ex;
    const r2 = await respond(open, ex2, 200, { 'content-type': 'application/json' }, [body]);
    expect(r2.destroyed).toBe(false);
    expect(r2.body.equals(body)).toBe(true);
  });
});
