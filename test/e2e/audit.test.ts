import { afterAll, beforeAll, expect, it } from 'vitest';
import { compilePriceTable, costUsd } from '../../shared/providers/prices.js';
import type { AuditRecord } from '../../sidecar/telemetry/audit-record.js';
import { ANTHROPIC_HOST, OPENAI_HOST, PLAIN_HOST, type RequestRecord } from './support/fake-provider.js';
import { findContainer } from './support/pod-spec.js';
import { APP, PodSession, PROXY, promptLog } from './support/pod-session.js';
import { CURL } from './support/paths.js';
import type { Background } from './support/process.js';
import { describeRoot } from './support/require-root.js';

// The audit log in a pod played for real (docs/audit.md): the injection config asks for it
// (`injection.proxy.telemetry.auditLog: stdout`), `aigress inject` puts AIGRESS_AUDIT_LOG on the proxy, and an
// unmodified app's calls each produce one record, checked here field by field against what the app sent, what
// the fake provider saw and answered, and the policy.

const KEYS = { openai: 'sk-e2e-audit-openai-0000', anthropic: 'sk-ant-e2e-audit-0000' };
const APP_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const APP_SPAN = '00f067aa0ba902b7';
const { sent, prompt } = promptLog();
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

describeRoot('the audit log in a pod: one record per AI call, every field', () => {
  const session = new PodSession({ tmpPrefix: 'aig-e2e-audit-', hosts: [OPENAI_HOST, ANTHROPIC_HOST, PLAIN_HOST], keys: KEYS, app: { telemetry: { auditLog: 'stdout' } } });
  let proxy: Background;
  const t0 = Date.now();

  beforeAll(async () => {
    await session.start();
    proxy = await session.startProxy();
  });
  afterAll(() => session.stop());

  function records(): AuditRecord[] {
    return proxy.stdout
      .split('\n')
      .filter((l) => l.startsWith('{"schema":"aigress.io/audit/v1"'))
      .map((l) => JSON.parse(l) as AuditRecord);
  }

  async function nextRecord(before: number): Promise<AuditRecord> {
    await proxy.waitFor('an audit record', () => records().length > before, 10_000);
    const all = records();
    expect(all).toHaveLength(before + 1);
    return all[before]!;
  }

  function curl(host: string, path: string, body: unknown, headers: string[]): Promise<{ code: number; stdout: string }> {
    const args = [CURL, '-sS', '-N', `https://${host}${path}`, '-H', 'content-type: application/json', '-d', JSON.stringify(body)];
    for (const h of headers) args.push('-H', h);
    return session.pod.exec(APP, args, { timeoutMs: 30_000 }).then((r) => ({ code: r.code ?? -1, stdout: r.stdout }));
  }

  it('the injected proxy carries AIGRESS_AUDIT_LOG from the injection config', () => {
    expect(findContainer(session.files.pod, PROXY).env).toContainEqual({ name: 'AIGRESS_AUDIT_LOG', value: 'stdout' });
  });

  it('a JSON chat call', async () => {
    const before = records().length;
    const mark = session.fake.mark();
    const body = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: prompt('audit json') }] };
    const r = await curl(OPENAI_HOST, '/v1/chat/completions', body, [`authorization: Bearer ${KEYS.openai}`, `traceparent: 00-${APP_TRACE}-${APP_SPAN}-01`]);
    expect(r.code).toBe(0);
    const rec = await nextRecord(before);
    const req = session.fake.requestsSince(mark)[0] as RequestRecord;
    const answer = session.fake.answersSince(mark)[0]!;
    const price = compilePriceTable([]).lookup('openai', ['gpt-4o-mini'])!;
    const usage = { input: answer.usage.input, output: answer.usage.output };

    expect(rec.schema).toBe('aigress.io/audit/v1');
    expect(rec.time).toMatch(ISO);
    expect(rec.startTime).toMatch(ISO);
    expect(Date.parse(rec.startTime)).toBeGreaterThanOrEqual(t0);
    expect(Date.parse(rec.time)).toBeGreaterThanOrEqual(Date.parse(rec.startTime));
    expect(rec.level).toBe('info');
    expect(rec.pod).toEqual({ namespace: 'team-a', pod: 'e2e-app', serviceAccount: 'e2e-app' });
    expect(rec.provider).toBe('openai');
    expect(rec.operation).toBe('chat');
    expect(rec.host).toBe(OPENAI_HOST);
    expect(rec.method).toBe('POST');
    expect(rec.path).toBe('/v1/chat/completions');
    expect(rec.region).toBe('us');
    expect(rec.stream).toBe(false);
    expect(rec.model).toEqual({ requested: 'gpt-4o-mini', served: 'gpt-4o-mini' });
    expect(rec.decision).toEqual({ outcome: 'allow', policy: { name: 'team-a/e2e', generation: 1, digest: expect.stringMatching(/^sha256:[0-9a-f]{16}$/) } });
    expect(rec.processors).toEqual([]);
    expect(rec.usage).toEqual(usage);
    expect(rec.usageMissing).toBeUndefined();
    expect(rec.costUsd).toBeCloseTo(costUsd(usage, price)!, 12);
    expect(rec.durationMs.total).toBeGreaterThan(0);
    expect(rec.durationMs.upstream).toBeGreaterThan(0);
    expect(rec.durationMs.upstream).toBeLessThanOrEqual(rec.durationMs.total);
    expect(rec.durationMs.timeToFirstChunk).toBeGreaterThan(0);
    expect(rec.bytes.request).toBe(Buffer.byteLength(JSON.stringify(body)));
    expect(rec.bytes.upstreamRequest).toBe(Buffer.byteLength(req.body));
    expect(rec.bytes.response).toBe(Buffer.byteLength(r.stdout));
    expect(rec.bytes.upstreamResponse).toBe(Buffer.byteLength(r.stdout));
    expect(rec.status).toBe(200);
    expect(rec.upstreamStatus).toBe(200);
    expect(rec.upstreamError).toBeUndefined();
    expect(rec.providerRequestId).toBe(`req_fake${answer.id}`);
    // The app's trace: the record names it; without OTLP export the proxy leaves the app's header as it was.
    expect(rec.traceId).toBe(APP_TRACE);
    expect(rec.spanId).toMatch(/^[0-9a-f]{16}$/);
    expect(req.headers.traceparent).toBe(`00-${APP_TRACE}-${APP_SPAN}-01`);
  });

  it('a streamed call, with a trace the proxy starts', async () => {
    const before = records().length;
    const mark = session.fake.mark();
    const body = { model: 'claude-haiku-4-5', max_tokens: 50, stream: true, messages: [{ role: 'user', content: prompt('audit stream') }] };
    const r = await curl(ANTHROPIC_HOST, '/v1/messages', body, [`x-api-key: ${KEYS.anthropic}`, 'anthropic-version: 2023-06-01']);
    expect(r.code).toBe(0);
    const rec = await nextRecord(before);
    const answer = session.fake.answersSince(mark)[0]!;
    expect(rec).toMatchObject({
      level: 'info',
      provider: 'anthropic',
      operation: 'chat',
      host: ANTHROPIC_HOST,
      path: '/v1/messages',
      region: 'us',
      stream: true,
      model: { requested: 'claude-haiku-4-5', served: 'claude-haiku-4-5' },
      decision: { outcome: 'allow', policy: { name: 'team-a/e2e', generation: 1 } },
      usage: { input: answer.usage.input, output: answer.usage.output },
      status: 200,
      upstreamStatus: 200,
      providerRequestId: `req_fake${answer.id}`,
    });
    expect(rec.bytes.response).toBe(Buffer.byteLength(r.stdout));
    expect(rec.durationMs.timeToFirstChunk).toBeGreaterThan(0);
    expect(rec.durationMs.timeToFirstChunk).toBeLessThanOrEqual(rec.durationMs.total);
    expect(rec.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(rec.traceId).not.toBe(APP_TRACE);
  });

  it('a denied call: the rule, the policy, the processor action; nothing upstream', async () => {
    const before = records().length;
    const mark = session.fake.mark();
    const body = { model: 'gpt-denied-1', messages: [{ role: 'user', content: prompt('audit denied') }] };
    const r = await curl(OPENAI_HOST, '/v1/chat/completions', body, [`authorization: Bearer ${KEYS.openai}`]);
    expect(r.code).toBe(0);
    const rec = await nextRecord(before);
    expect(session.fake.requestsSince(mark)).toHaveLength(0);
    expect(rec).toMatchObject({
      level: 'warn',
      provider: 'openai',
      model: { requested: 'gpt-denied-1' },
      decision: { outcome: 'deny', reason: 'model_denied', by: 'models', policy: { name: 'team-a/e2e', generation: 1 } },
      processors: [{ processor: 'models', type: 'models', phase: 'admit', action: 'deny', reason: 'model_denied' }],
      status: 403,
      bytes: { request: Buffer.byteLength(JSON.stringify(body)), response: Buffer.byteLength(r.stdout) },
    });
    expect(rec.decision.message).toMatch(/gpt-denied-1/);
    for (const absent of ['usage', 'costUsd', 'upstreamStatus', 'providerRequestId'] as const) expect(rec[absent], absent).toBeUndefined();
    expect(rec.model.served).toBeUndefined();
  });

  it('records are apart from the operational log lines, and neither holds a prompt or a key', () => {
    const out = proxy.stdout;
    expect(records()).toHaveLength(3);
    expect(out.split('\n').filter((l) => l.includes('"msg":"ai request"'))).toHaveLength(3);
    for (const s of [...sent, KEYS.openai, KEYS.anthropic]) expect(out).not.toContain(s);
  });
});
