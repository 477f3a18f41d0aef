import { existsSync, readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { rootCertificates } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parsePolicy } from '../../../shared/policy/load.js';
import type { EgressPolicy } from '../../../shared/policy/types.js';
import { pipelineOf } from '../../../sidecar/pipeline/index.js';
import type { Exchange, Pipeline } from '../../../sidecar/pipeline/types.js';
import type { PolicySource } from '../../../sidecar/proxy/sources/types.js';
import {
  adminRequest,
  callTls,
  captureLogger,
  createTestPki,
  fakeUpstream,
  metricValue,
  policyYaml,
  startTestProxy,
  type TestPki,
  type TestProxy,
} from './support.js';

// Readiness, the CA bundle, drain and shutdown, the log line, and the pipeline seam's contract.

let pki: TestPki;
let upstreamPort: number;
let onRequest: (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse, body: string) => void;
const closers: (() => Promise<void>)[] = [];

beforeAll(async () => {
  pki = await createTestPki();
  const up = await fakeUpstream(pki, 'api.openai.com', (req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => onRequest(req, res, body));
  });
  upstreamPort = up.port;
  closers.push(up.close);
});
afterAll(async () => {
  await Promise.all(closers.map((c) => c()));
});

const resolve = () => ({ 'api.openai.com': { host: '127.0.0.1', port: upstreamPort } });

/** A policy source that answers only when the test says so. */
function gatedPolicy(): { source: PolicySource; release(): void } {
  const policy: EgressPolicy = parsePolicy(policyYaml(), 'test');
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  return {
    release,
    source: {
      ready: () => gate.then(() => policy),
      current: () => policy,
      onChange: () => undefined,
      close: () => undefined,
    },
  };
}

describe('readiness and the CA bundle', () => {
  it('says not ready until certificate, policy and bundle are in place, then ready, with bundle.pem = roots + CA', async () => {
    const gated = gatedPolicy();
    const p = await startTestProxy(pki, { policy: gated.source, resolve: resolve() });
    expect((await adminRequest(p, '/healthz')).status).toBe(200);
    const before = await adminRequest(p, '/readyz');
    expect(before.status).toBe(503);
    expect(existsSync(join(p.bundleDir, 'bundle.pem'))).toBe(false);
    gated.release();
    await p.handle.ready;
    expect((await adminRequest(p, '/readyz')).status).toBe(200);
    const pem = readFileSync(join(p.bundleDir, 'bundle.pem'), 'utf8');
    expect(pem.match(/BEGIN CERTIFICATE/g)!.length).toBe(rootCertificates.length + 1);
    expect(pem).toContain(pki.caPem.trim());
    expect(existsSync(join(p.bundleDir, 'truststore.p12'))).toBe(true);
    await p.handle.close();
  });

  it('rejects `ready` with the source\'s error (bad CA dir) and stays not ready', async () => {
    const { LocalCaCertificateSource } = await import('../../../sidecar/proxy/sources/standalone.js');
    const p = await startTestProxy(pki, { certificates: new LocalCaCertificateSource(join(pki.dir, 'missing')) });
    await expect(p.handle.ready).rejects.toThrow(/--ca-dir: cannot read .*tls\.crt: ENOENT/);
    expect((await adminRequest(p, '/readyz')).status).toBe(503);
    await p.handle.close();
  });
});

describe('drain', () => {
  it('finishes an in-flight SSE stream while refusing new connections, then stops', async () => {
    const p = await startTestProxy(pki, { resolve: resolve(), drainTimeoutMs: 5_000 });
    await p.handle.ready;
    let finishStream!: () => void;
    const streamCanFinish = new Promise<void>((r) => (finishStream = r));
    onRequest = (_q, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: 1\n\n');
      void streamCanFinish.then(() => res.end('data: 2\n\n'));
    };
    let sawFirst!: () => void;
    const firstArrived = new Promise<void>((r) => (sawFirst = r));
    const streamed = new Promise<{ text: string; complete: boolean }>((res) => {
      const req = httpsRequest(
        { host: '127.0.0.1', port: p.handle.capturePort, servername: 'api.openai.com', ca: pki.caPem, method: 'POST', path: '/v1/chat/completions', headers: { host: 'api.openai.com' }, agent: false },
        (r) => {
          let text = '';
          r.on('data', (c: Buffer) => {
            text += c.toString();
            sawFirst();
          });
          r.on('end', () => res({ text, complete: true }));
          r.on('aborted', () => res({ text, complete: false }));
        },
      );
      req.on('error', () => res({ text: '', complete: false }));
      req.end('{}');
    });
    await firstArrived;
    const drained = p.handle.drain();
    let drainedYet = false;
    void drained.then(() => (drainedYet = true));
    // New connections are refused while the stream is still open.
    await expect(callTls(p.handle.capturePort, 'api.openai.com', pki.caPem, { body: '{}' })).rejects.toThrow(/ECONNREFUSED/);
    expect((await adminRequest(p, '/readyz')).status).toBe(503);
    expect(drainedYet).toBe(false);
    finishStream();
    expect(await streamed).toEqual({ text: 'data: 1\n\ndata: 2\n\n', complete: true });
    await drained;
    await p.handle.stopped;
  });

  it('cuts what is still running when the drain timeout passes', async () => {
    const p = await startTestProxy(pki, { resolve: resolve(), drainTimeoutMs: 200 });
    await p.handle.ready;
    onRequest = (_q, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: 1\n\n'); // and never ends
    };
    const ended = new Promise<string>((res) => {
      const req = httpsRequest(
        { host: '127.0.0.1', port: p.handle.capturePort, servername: 'api.openai.com', ca: pki.caPem, method: 'POST', path: '/', headers: { host: 'api.openai.com' }, agent: false },
        (r) => {
          r.on('data', () => void p.handle.drain());
          r.on('end', () => res('end'));
          r.on('aborted', () => res('aborted'));
          r.on('error', () => res('error'));
        },
      );
      req.on('error', () => res('error'));
      req.end('{}');
    });
    expect(await ended).not.toBe('end');
    await p.handle.stopped;
  });

  it('POST /shutdown from localhost drains and stops; other verbs are refused', async () => {
    const p = await startTestProxy(pki, { resolve: resolve() });
    await p.handle.ready;
    expect((await adminRequest(p, '/shutdown')).status).toBe(405);
    expect((await adminRequest(p, '/shutdown', 'POST')).status).toBe(202);
    await p.handle.stopped;
  });
});

describe('the log line', () => {
  it('has one line per AI request with host, provider, method, path, status, duration and bytes; no prompt, key or query', async () => {
    const cap = captureLogger();
    const p = await startTestProxy(pki, { resolve: resolve(), logger: cap.logger });
    await p.handle.ready;
    const answer = '{"choices":[{"message":{"content":"MODEL-ANSWER-TEXT"}}]}';
    const prompt = '{"messages":[{"role":"user","content":"PROMPT-TEXT-789"}]}';
    onRequest = (_q, res) => res.end(answer);
    const r = await callTls(p.handle.capturePort, 'api.openai.com', pki.caPem, {
      path: '/v1/chat/completions?key=QUERY-SECRET-KEY',
      headers: { authorization: 'Bearer sk-SECRET-TOKEN-123', 'x-api-key': 'HEADER-KEY-456' },
      body: prompt,
    });
    expect(r.status).toBe(200);
    await p.handle.close();
    const all = cap.raw.join('\n');
    for (const secret of ['PROMPT-TEXT-789', 'sk-SECRET-TOKEN-123', 'HEADER-KEY-456', 'QUERY-SECRET-KEY', 'MODEL-ANSWER-TEXT']) {
      expect(all).not.toContain(secret);
    }
    const lines = cap.lines.filter((l) => l.msg === 'ai request');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      host: 'api.openai.com',
      provider: 'openai',
      method: 'POST',
      path: '/v1/chat/completions',
      status: 200,
      decision: 'allow',
      reqBytes: Buffer.byteLength(prompt),
      resBytes: Buffer.byteLength(answer),
    });
    expect(typeof lines[0]!.durationMs).toBe('number');
  });

  it('names the pod from the identity in every line', async () => {
    const cap = captureLogger();
    const p = await startTestProxy(pki, { resolve: resolve(), logger: cap.logger, identity: { namespace: 'team-a', pod: 'app-1', serviceAccount: 'sa' } });
    await p.handle.ready;
    await p.handle.close();
    expect(cap.lines.find((l) => l.msg === 'proxy ready')).toMatchObject({ namespace: 'team-a', pod: 'app-1', serviceAccount: 'sa' });
  });
});

describe('the pipeline seam', () => {
  let p: TestProxy;
  const ended: boolean[] = [];
  const has = (ex: Exchange, text: string): boolean => ex.request.body.bytes().includes(text);
  const pipeline: Pipeline = pipelineOf([
    {
      name: 'facts',
      type: 'test',
      phase: 'describe',
      onRequest: (ex: Exchange) => {
        ex.facts.operation = 'chat';
        ex.facts.modelLabel = 'gpt-test';
        return { action: 'continue' };
      },
    },
    {
      name: 'deny-forbidden',
      type: 'test',
      phase: 'admit',
      onRequest: (ex) =>
        has(ex, 'forbidden')
          ? { action: 'deny', kind: 'budget', status: 429, reason: 'test', message: 'budget spent', headers: { 'retry-after': '7' } }
          : { action: 'continue' },
    },
    {
      name: 'redact',
      type: 'test',
      phase: 'transform',
      onRequest: (ex) => {
        if (has(ex, 'secret')) {
          ex.request.body.replace(Buffer.from(ex.request.body.bytes().toString().replaceAll('secret', '[redacted]')));
          ex.request.headers.set('x-redacted', '1');
          ex.request.headers.delete('x-drop');
        }
        return { action: 'continue' };
      },
      onResponse: () => ({
        body(body) {
          body.replace(Buffer.from(body.bytes().toString().replaceAll('world', 'WORLD') + '|held'));
          return { action: 'continue' };
        },
      }),
      onEnd: (_ex, end) => {
        ended.push(end.complete);
      },
    },
    {
      name: 'sees-rewrite',
      type: 'test',
      phase: 'transform',
      onRequest: (ex) => {
        ex.facts.sawRedacted = has(ex, '[redacted]');
        return { action: 'continue' };
      },
    },
    {
      name: 'throws-on-boom',
      type: 'test',
      phase: 'transform',
      onRequest: (ex) => {
        if (has(ex, 'boom')) throw new Error('processor bug');
        return { action: 'continue' };
      },
    },
  ]);

  beforeAll(async () => {
    p = await startTestProxy(pki, { resolve: resolve(), buildPipeline: () => pipeline });
    await p.handle.ready;
  });
  afterAll(() => p.handle.close());

  it('answers a deny in the provider\'s shape with its headers, and nothing leaves the pod', async () => {
    let called = false;
    onRequest = (_q, res) => {
      called = true;
      res.end();
    };
    const r = await callTls(p.handle.capturePort, 'api.openai.com', pki.caPem, { body: '{"x":"forbidden"}' });
    expect(r.status).toBe(429);
    expect(r.headers['retry-after']).toBe('7');
    expect(JSON.parse(r.body.toString())).toMatchObject({ error: { message: 'budget spent', code: 'aigress_budget' } });
    expect(called).toBe(false);
    const m = await p.handle.registry.metrics();
    expect(metricValue(m, 'aigress_requests_total', { provider: 'openai', operation: 'chat', model: 'gpt-test', decision: 'deny', code: '429' })).toBe(1);
  });

  it('forwards a rewritten body with its new length and header changes; later processors see it', async () => {
    let seen: { body: string; headers: import('node:http').IncomingHttpHeaders } | undefined;
    onRequest = (req, res, body) => {
      seen = { body, headers: req.headers };
      res.writeHead(200, { 'content-length': '11' });
      res.end('hello world');
    };
    const r = await callTls(p.handle.capturePort, 'api.openai.com', pki.caPem, { body: '{"x":"my secret"}', headers: { 'x-drop': 'gone' } });
    expect(seen!.body).toBe('{"x":"my [redacted]"}');
    expect(seen!.headers['content-length']).toBe(String(Buffer.byteLength('{"x":"my [redacted]"}')));
    expect(seen!.headers['x-redacted']).toBe('1');
    expect(seen!.headers['x-drop']).toBeUndefined();
    // The response body was held and rewritten before the head went out, so its length is the new one.
    expect(r.body.toString()).toBe('hello WORLD|held');
    expect(r.headers['content-length']).toBe(String('hello WORLD|held'.length));
    expect(ended.at(-1)).toBe(true);
  });

  it('fails closed with 503 when a processor throws', async () => {
    let called = false;
    onRequest = (_q, res) => {
      called = true;
      res.end();
    };
    const r = await callTls(p.handle.capturePort, 'api.openai.com', pki.caPem, { body: 'boom' });
    expect(r.status).toBe(503);
    expect(called).toBe(false);
  });
});
