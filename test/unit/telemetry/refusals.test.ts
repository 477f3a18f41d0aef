// Requests the proxy refuses before the pipeline (413 body too large, 421 Host ≠ SNI, 431 header block, 400
// unparseable head), over HTTP/1.1 and HTTP/2: each gets an audit record and a span with error.type, the app's
// trace as parent when it sent one, and nothing of the request's content.
import { readFileSync } from 'node:fs';
import { connect as h2Connect } from 'node:http2';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildPipeline } from '../../../sidecar/pipeline/index.js';
import { MAX_HEADER_FIELDS } from '../../../sidecar/proxy/limits.js';
import type { AuditRecord } from '../../../sidecar/telemetry/audit-record.js';
import { telemetryConfig } from '../../../sidecar/telemetry/config.js';
import { callTls, createTestPki, fakeUpstream, startTestProxy, type TestPki, type TestProxy } from '../proxy/support.js';
import { startCollector, type Collector, type ReceivedSpan } from './collector.js';

let pki: TestPki;
let proxy: TestProxy;
let collector: Collector;
let auditFile: string;
let upstreamCalls = 0;
const closers: (() => Promise<void>)[] = [];
const OPENAI = 'api.openai.com';
const TRACE = '5bf92f3577b34da6a3ce929d0e0e4736';
const PARENT = '00f067aa0ba902b7';
const PROMPT = 'a private prompt that must stay out of telemetry';

beforeAll(async () => {
  pki = await createTestPki();
  collector = await startCollector();
  const up = await fakeUpstream(pki, OPENAI, (req, res) => {
    upstreamCalls++;
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
  });
  closers.push(up.close);
  auditFile = join(pki.dir, 'refusals', 'audit.jsonl');
  proxy = await startTestProxy(pki, {
    buildPipeline,
    maxBodyBytes: 256,
    resolve: { [OPENAI]: { host: '127.0.0.1', port: up.port } },
    identity: { namespace: 'team-a', pod: 'chat-0', serviceAccount: 'chat', workload: 'Deployment/chat' },
    telemetry: telemetryConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: collector.url, OTEL_BSP_SCHEDULE_DELAY: '20' }, { auditLog: auditFile }),
  });
  await proxy.handle.ready;
});

afterAll(async () => {
  await proxy.handle.close();
  for (const c of closers) await c();
  await collector.close();
});

async function until<T>(f: () => T | undefined): Promise<T> {
  for (let i = 0; i < 200; i++) {
    const v = f();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error('timed out waiting for the collector');
}

const spanOf = (status: number, extra: (s: ReceivedSpan) => boolean = () => true): Promise<ReceivedSpan> =>
  until(() => collector.spans.find((s) => s.attributes['http.response.status_code'] === status && extra(s)));

/** Bytes written on a TLS connection to the capture port; resolves with what came back until it closed. */
function rawTls(bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port: proxy.handle.capturePort, servername: OPENAI, ca: pki.caPem, ALPNProtocols: ['http/1.1'] }, () => s.write(bytes));
    let got = '';
    s.on('data', (d: Buffer) => (got += d.toString()));
    s.on('close', () => resolve(got));
    s.on('error', reject);
    setTimeout(() => s.destroy(), 3_000).unref();
  });
}

describe('requests refused before the pipeline', () => {
  it('413: a span (child of the app trace) and the model, operation and region the URL and host tell', async () => {
    const r = await callTls(proxy.handle.capturePort, OPENAI, pki.caPem, {
      headers: { 'content-type': 'application/json', traceparent: `00-${TRACE}-${PARENT}-01` },
      body: JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: PROMPT.repeat(10) }] }),
    });
    expect(r.status).toBe(413);
    const span = await until(() => collector.spans.find((s) => s.traceId === TRACE));
    expect(span.parentSpanId).toBe(PARENT);
    expect(span.kind).toBe(3);
    expect(span.name).toBe('chat');
    expect(span.status.code).toBe(2);
    expect(span.attributes).toMatchObject({
      'error.type': '413',
      'http.response.status_code': 413,
      'gen_ai.operation.name': 'chat',
      'gen_ai.provider.name': 'openai',
      'server.address': OPENAI,
      'aigress.decision': 'deny',
      'aigress.deny.reason': 'body_too_large',
      'aigress.denied_by': 'proxy',
      'aigress.policy.generation': 1,
      'aigress.region': 'us',
    });
    expect(span.resource).toMatchObject({ 'k8s.pod.name': 'chat-0', 'k8s.deployment.name': 'chat' });
  });

  it('421 (Host ≠ SNI), 431 (too many header fields) and 400 (unparseable head) over HTTP/1.1', async () => {
    const misdirected = await callTls(proxy.handle.capturePort, 'api.anthropic.com', pki.caPem, { servername: OPENAI, body: '{}' });
    expect(misdirected.status).toBe(421);
    const many: Record<string, string> = {};
    for (let i = 0; i <= MAX_HEADER_FIELDS; i++) many[`x-h${i}`] = 'v';
    const tooMany = await callTls(proxy.handle.capturePort, OPENAI, pki.caPem, { headers: many, body: '{}' });
    expect(tooMany.status).toBe(431);
    const garbage = await rawTls('NOT HTTP AT ALL\r\n\r\n');
    expect(garbage).toMatch(/^HTTP\/1\.1 400 /);
    const s421 = await spanOf(421);
    expect(s421.attributes).toMatchObject({ 'error.type': '421', 'aigress.deny.reason': 'misdirected', 'gen_ai.provider.name': 'openai' });
    const s431 = await spanOf(431);
    expect(s431.attributes).toMatchObject({ 'error.type': '431', 'aigress.deny.reason': 'headers_too_large' });
    const s400 = await spanOf(400);
    expect(s400.attributes).toMatchObject({ 'error.type': '400', 'aigress.deny.reason': 'malformed_request', 'gen_ai.operation.name': 'unknown', 'server.address': OPENAI });
  });

  it('431 over HTTP/2: the stream is refused, the span and record are written', async () => {
    const session = h2Connect(`https://${OPENAI}`, {
      createConnection: () => tlsConnect({ host: '127.0.0.1', port: proxy.handle.capturePort, servername: OPENAI, ca: pki.caPem, ALPNProtocols: ['h2'] }),
    });
    const headers: Record<string, string> = { ':method': 'POST', ':path': '/v1/embeddings', 'x-h2': 'yes' };
    for (let i = 0; i <= MAX_HEADER_FIELDS; i++) headers[`x-f${i}`] = 'v';
    const status = await new Promise<number>((resolve, reject) => {
      const st = session.request(headers);
      st.on('response', (h) => resolve(Number(h[':status'])));
      st.on('error', reject);
      st.end('{}');
    });
    session.close();
    expect(status).toBe(431);
    const span = await spanOf(431, (s) => s.attributes['gen_ai.operation.name'] === 'embeddings');
    expect(span.name).toBe('embeddings');
  });

  it('one audit record per refusal, with what is known of the request and never its content', async () => {
    await proxy.handle.drain(1_000);
    expect(upstreamCalls).toBe(0);
    const text = readFileSync(auditFile, 'utf8');
    expect(text).not.toContain('private prompt');
    const records = text.trim().split('\n').map((l) => JSON.parse(l) as AuditRecord);
    expect(records.map((r) => r.status).sort()).toEqual([400, 413, 421, 431, 431]);
    const tooLarge = records.find((r) => r.status === 413)!;
    expect(tooLarge).toMatchObject({
      schema: 'aigress.io/audit/v1',
      level: 'warn',
      pod: { namespace: 'team-a', pod: 'chat-0', serviceAccount: 'chat', workload: 'Deployment/chat' },
      provider: 'openai',
      operation: 'chat',
      host: OPENAI,
      method: 'POST',
      path: '/v1/chat/completions',
      region: 'us',
      stream: false,
      decision: { outcome: 'deny', reason: 'body_too_large', by: 'proxy', policy: { generation: 1 } },
      processors: [],
      traceId: TRACE,
    });
    expect(tooLarge.decision.policy!.digest).toMatch(/^sha256:[0-9a-f]{16}$/);
    expect(tooLarge.bytes.request).toBeGreaterThan(256);
    expect(tooLarge.bytes.response).toBeGreaterThan(0);
    expect(Date.parse(tooLarge.time)).toBeGreaterThanOrEqual(Date.parse(tooLarge.startTime));
    const malformed = records.find((r) => r.status === 400)!;
    expect(malformed).toMatchObject({ provider: 'openai', operation: 'unknown', host: OPENAI, decision: { reason: 'malformed_request' } });
    expect(malformed.method).toBeUndefined();
    expect(malformed.path).toBeUndefined();
    const spanIds = new Set(collector.spans.map((s) => s.spanId));
    for (const r of records) expect(spanIds.has(r.spanId), `span of the ${r.status} record`).toBe(true);
  });
});
