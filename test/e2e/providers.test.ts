import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BEDROCK_EU_HOST,
  BEDROCK_US_HOST,
  OPENAI_EU_HOST,
  OPENAI_HOST,
  PLAIN_HOST,
  type StreamRecord,
} from './support/fake-provider.js';
import { metricSum } from './support/metrics.js';
import { APPS_DIR } from './support/paths.js';
import { findContainer } from './support/pod-spec.js';
import { APP, PodSession, promptLog } from './support/pod-session.js';
import type { Background, RunResult } from './support/process.js';
import { describeRoot } from './support/require-root.js';

// Issue #5 in the pod played for real (see README.md here): provider awareness and metering with unmodified SDKs.
// The pod's policy holds calls to the EU (`regions.allow: [eu]`), so OpenAI's default endpoint (us) and Bedrock in
// us-east-1 are denied, while OpenAI's EU endpoint and Bedrock in eu-central-1 are served and metered.

const KEYS = { openai: 'sk-e2e-providers-openai-0000', anthropic: 'sk-ant-e2e-providers-0000' };
const AWS_KEY_ID = 'AKIAE2EPROVIDERS0000';
const AWS_SECRET = 'e2e-providers-aws-secret-0000';
const OPENAI_MODEL = 'gpt-4o-mini';
/** A cross-region inference profile of the EU geography: reach eu-central-1 and eu, both allowed by [eu]. */
const BEDROCK_PROFILE_MODEL = 'eu.anthropic.claude-3-5-haiku-20241022-v1:0';
const BEDROCK_MODEL = 'amazon.nova-lite-v1:0';
const POLICY = `apiVersion: aigress.io/v1alpha1
kind: EgressPolicy
metadata: { name: e2e-eu, namespace: team-a }
spec:
  providers: [openai, bedrock]
  regions: { allow: [eu] }
  unmatchedEgress: passthrough
`;

const { sent: sentPrompts, prompt } = promptLog();

/** The JSON line an app prints on stderr for an error the API answered (after any runtime warnings). */
function apiError(stderr: string): { error: string; status: number; message: string } {
  const line = stderr.trim().split('\n').reverse().find((l) => l.startsWith('{"error"'));
  if (!line) throw new Error(`no API error line in the app's stderr:\n${stderr}`);
  return JSON.parse(line) as { error: string; status: number; message: string };
}

describeRoot('providers in the pod (issue #5): OpenAI stream usage, EU-only regions, Bedrock through the AWS SDK', () => {
  const session = new PodSession({
    tmpPrefix: 'aig-e2e-providers-',
    hosts: [OPENAI_HOST, OPENAI_EU_HOST, BEDROCK_EU_HOST, BEDROCK_US_HOST, PLAIN_HOST],
    fakeHosts: { openaiHosts: [OPENAI_HOST, OPENAI_EU_HOST], anthropicHosts: [], bedrockHosts: [BEDROCK_EU_HOST, BEDROCK_US_HOST] },
    keys: KEYS,
    // The app's own spec carries its AWS credentials, as a Secret-backed env would.
    app: { policy: POLICY, appEnv: { AWS_ACCESS_KEY_ID: AWS_KEY_ID, AWS_SECRET_ACCESS_KEY: AWS_SECRET } },
  });
  let proxy: Background;

  const tokens = (text: string, labels: Record<string, string>): { input: number; output: number } => ({
    input: metricSum(text, 'aigress_tokens_total', { ...labels, type: 'input' }),
    output: metricSum(text, 'aigress_tokens_total', { ...labels, type: 'output' }),
  });

  function app(argv: readonly string[]): Promise<RunResult> {
    return session.pod.exec(APP, argv, { timeoutMs: 45_000 });
  }

  const openai = (mode: string, text: string, baseUrl?: string): string[] => [
    // OPENAI_BASE_URL is how an app picks OpenAI's EU endpoint without code; here set for one run, like `env` in a shell.
    ...(baseUrl ? ['/usr/bin/env', `OPENAI_BASE_URL=${baseUrl}`] : []),
    process.execPath, join(APPS_DIR, 'openai-chat.mjs'), mode, OPENAI_MODEL, text,
  ];
  const bedrock = (mode: 'converse' | 'stream', region: string, model: string, text: string, transport: string[] = ['--http1']): string[] => [
    process.execPath, join(APPS_DIR, 'bedrock.mjs'), mode, region, model, text, ...transport,
  ];

  beforeAll(async () => {
    await session.start();
    proxy = await session.startProxy();
  });
  afterAll(() => session.stop());

  it('the app\'s environment is only what the injected spec gives it: the pod bundle for every TLS stack, AWS_CA_BUNDLE too', () => {
    const env = Object.fromEntries((findContainer(session.files.pod, APP).env ?? []).map((e) => [e.name, e.value]));
    for (const name of ['NODE_EXTRA_CA_CERTS', 'AWS_CA_BUNDLE', 'SSL_CERT_FILE']) expect(env[name], name).toMatch(/\/bundle\.pem$/);
    expect(env).toMatchObject({ AWS_ACCESS_KEY_ID: AWS_KEY_ID });
    expect(env.OPENAI_BASE_URL).toBeUndefined();
  });

  it('openai SDK streaming without stream_options: no usage chunk reaches the app, yet /metrics has the exact counts the provider sent', async () => {
    const before = tokens(await session.metrics(), { provider: 'openai', model: OPENAI_MODEL });
    const requestsBefore = metricSum(await session.metrics(), 'aigress_requests_total', { provider: 'openai' });
    const mark = session.fake.mark();
    const text = prompt('openai stream-plain');
    const r = await app(openai('stream-plain', text, `https://${OPENAI_EU_HOST}/v1`));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { content: string; usage: unknown; chunks: number; received: Record<string, unknown>[] };
    expect(out.content).toBe(`echo: ${text}`);
    // The app gets the stream it asked for: no usage-only chunk, no `usage` member on any chunk.
    expect(out.usage).toBeNull();
    expect(out.received).toHaveLength(out.chunks);
    expect(out.received.filter((c) => 'usage' in c)).toEqual([]);
    expect(out.received.every((c) => Array.isArray(c.choices) && c.choices.length === 1)).toBe(true);

    // The provider was asked for usage (by the proxy) and sent it.
    const [req] = session.fake.requestsSince(mark);
    expect(req).toMatchObject({ sni: OPENAI_EU_HOST, host: OPENAI_EU_HOST, path: '/v1/chat/completions', remoteAddress: session.net.podAddr });
    const sentBody = JSON.parse(req!.body) as { stream: boolean; stream_options?: { include_usage?: boolean }; messages: { content: string }[] };
    expect(sentBody).toMatchObject({ stream: true, stream_options: { include_usage: true } });
    expect(sentBody.messages[0]!.content).toBe(text);
    const answers = session.fake.answersSince(mark);
    expect(answers).toHaveLength(1);
    expect(answers[0]).toMatchObject({ id: req!.id, provider: 'openai', stream: true, usageSent: true });
    const end = await session.fake.waitFor('the stream to end', mark, (x): x is StreamRecord => x.type === 'stream-end' && x.id === req!.id);
    expect(end.complete).toBe(true);

    expect(await session.waitMetric('aigress_requests_total', { provider: 'openai' }, requestsBefore + 1)).toBe(requestsBefore + 1);
    const after = tokens(await session.metrics(), { provider: 'openai', model: OPENAI_MODEL });
    expect({ input: after.input - before.input, output: after.output - before.output }).toEqual(answers[0]!.usage);
  });

  it('openai SDK to api.openai.com (region us) fails with 451 and aigress\'s reason; nothing reaches the provider', async () => {
    const denials = (t: string): number => metricSum(t, 'aigress_denials_total', { provider: 'openai', reason: 'region_not_allowed' });
    const before = denials(await session.metrics());
    const mark = session.fake.mark();
    const r = await app(openai('chat', prompt('openai us')));
    expect(r.code).toBe(1);
    const err = apiError(r.stderr);
    expect(err.status).toBe(451);
    expect(err.message).toContain('aigress: region "us" is not allowed by policy team-a/e2e-eu (allowed: eu)');
    expect(session.fake.since(mark)).toEqual([]);
    expect(denials(await session.metrics())).toBe(before + 1);
  });

  describe('Amazon Bedrock through the AWS SDK for JavaScript (bedrock-runtime)', () => {
    // The SDK's default for bedrock-runtime is HTTP/2 (NodeHttp2Handler: ALPN offers h2 only); the proxy terminates
    // it as h2 (sidecar/proxy/h2.ts) and talks HTTP/1.1 to the provider. `--http1` is the SDK's own HTTP/1.1 handler.
    it.each([
      ['Converse', 'the SDK\'s default HTTP/2 handler', 'converse', BEDROCK_PROFILE_MODEL, 'anthropic.claude-3-5-haiku-20241022-v1:0', []],
      ['ConverseStream', 'the SDK\'s default HTTP/2 handler', 'stream', BEDROCK_MODEL, BEDROCK_MODEL, []],
      ['Converse', 'the SDK\'s HTTP/1.1 handler', 'converse', BEDROCK_PROFILE_MODEL, 'anthropic.claude-3-5-haiku-20241022-v1:0', ['--http1']],
      ['ConverseStream', 'the SDK\'s HTTP/1.1 handler', 'stream', BEDROCK_MODEL, BEDROCK_MODEL, ['--http1']],
    ] as const)('%s in eu-central-1 succeeds (%s) and is metered with the provider\'s exact counts', async (_name, _transport, mode, model, label, transport) => {
      const m0 = await session.metrics();
      const before = tokens(m0, { provider: 'bedrock', model: label });
      const requestsBefore = metricSum(m0, 'aigress_requests_total', { provider: 'bedrock' });
      const mark = session.fake.mark();
      const text = prompt(`bedrock ${mode}`);
      const r = await app(bedrock(mode, 'eu-central-1', model, text, [...transport]));
      expect(r.code, r.stderr).toBe(0);
      const out = JSON.parse(r.stdout) as { content: string; stopReason: string; usage: { inputTokens: number; outputTokens: number }; events: string[] | null };
      expect(out.content).toBe(`echo: ${text}`);
      expect(out.stopReason).toBe('end_turn');
      if (mode === 'stream') {
        expect(out.events?.[0]).toBe('messageStart');
        expect(out.events?.slice(-3)).toEqual(['contentBlockStop', 'messageStop', 'metadata']);
      }

      const reqs = session.fake.requestsSince(mark);
      expect(reqs).toHaveLength(1);
      const req = reqs[0]!;
      const action = mode === 'stream' ? 'converse-stream' : 'converse';
      expect(req).toMatchObject({ transport: 'https', sni: BEDROCK_EU_HOST, host: BEDROCK_EU_HOST, method: 'POST', remoteAddress: session.net.podAddr });
      expect(req.path).toBe(`/model/${encodeURIComponent(model)}/${action}`);
      // Signed by the SDK with the app's own credentials for the region and service; the proxy passed it on as is.
      expect(req.headers.authorization).toMatch(new RegExp(`^AWS4-HMAC-SHA256 Credential=${AWS_KEY_ID}/\\d{8}/eu-central-1/bedrock/aws4_request, SignedHeaders=[^,]+, Signature=[0-9a-f]{64}$`));
      expect(JSON.parse(req.body).messages[0].content[0].text).toBe(text);
      const answers = session.fake.answersSince(mark);
      expect(answers).toHaveLength(1);
      expect(answers[0]).toMatchObject({ id: req.id, provider: 'bedrock', model, stream: mode === 'stream' });
      // The usage reached the app intact (the proxy reads it on the way; it must not eat it).
      expect({ input: out.usage.inputTokens, output: out.usage.outputTokens }).toEqual(answers[0]!.usage);
      if (mode === 'stream') {
        const end = await session.fake.waitFor('the stream to end', mark, (x): x is StreamRecord => x.type === 'stream-end' && x.id === req.id);
        expect(end.complete).toBe(true);
      }

      expect(await session.waitMetric('aigress_requests_total', { provider: 'bedrock' }, requestsBefore + 1)).toBe(requestsBefore + 1);
      const after = tokens(await session.metrics(), { provider: 'bedrock', model: label });
      expect({ input: after.input - before.input, output: after.output - before.output }).toEqual(answers[0]!.usage);
    });

    it.each([
      ['Converse', 'converse'],
      ['ConverseStream', 'stream'],
    ] as const)('%s in us-east-1 fails in the SDK with 451 AccessDeniedException and aigress\'s reason; nothing reaches the provider', async (_name, mode) => {
      const denials = (t: string): number => metricSum(t, 'aigress_denials_total', { provider: 'bedrock', reason: 'region_not_allowed' });
      const before = denials(await session.metrics());
      const mark = session.fake.mark();
      const r = await app(bedrock(mode, 'us-east-1', BEDROCK_MODEL, prompt(`bedrock us ${mode}`)));
      expect(r.code).toBe(1);
      const err = apiError(r.stderr);
      expect(err).toMatchObject({ error: 'AccessDeniedException', status: 451 });
      expect(err.message).toBe('aigress: region "us-east-1" is not allowed by policy team-a/e2e-eu (allowed: eu)');
      expect(session.fake.since(mark)).toEqual([]);
      expect(denials(await session.metrics())).toBe(before + 1);
    });
  });

  it('the proxy logs no API key, no AWS secret or signature, and no prompt text', () => {
    const logs = proxy.stdout + proxy.stderr;
    expect(logs).toContain('"provider":"bedrock"'); // it does log the requests, just not their secrets
    for (const secret of [KEYS.openai, AWS_SECRET, 'AWS4-HMAC-SHA256', ...sentPrompts]) expect(logs).not.toContain(secret);
  });
});

