import { describe, expect, it } from 'vitest';
import { demoCalls, evaluateCall, type CallObservation, type DemoCall } from '../../../cli/demo/calls.js';
import type { FakeAnswer, RequestRecord } from '../../../cli/demo/fake-provider.js';
import { growth, parseSamples, sumSamples } from '../../../cli/demo/metrics-text.js';
import { proxyConfigFromArgs } from '../../../cli/demo/proxy-args.js';
import { summarizeInjection } from '../../../cli/demo/pod-summary.js';
import { samplePod } from '../../../cli/demo/sample.js';
import { defaultConfig } from '../../../webhook/config.js';
import { inject } from '../../../webhook/inject/inject.js';

// The demo's pure parts: the verdict on each call (so a wrong outcome fails the demo), the metrics reader, the
// proxy args it starts from, and the summary of the injected pod.

const ISSUERS = { bundle: 'aigress demo CA', publicRoots: 'public root' };
const call = (id: string): DemoCall => demoCalls().find((c) => c.id === id)!;

function upstream(body: unknown): RequestRecord {
  return {
    type: 'request', at: 0, id: 7, transport: 'https', sni: 'api.openai.com', alpn: null, remoteAddress: '127.0.0.1', remotePort: 1,
    method: 'POST', path: '/v1/chat/completions', host: 'api.openai.com', headers: {}, body: JSON.stringify(body),
  };
}
const answer = (input: number, output: number): FakeAnswer => ({ id: 7, provider: 'openai', model: 'gpt-4o-mini', stream: false, usage: { input, output }, usageSent: true });
const chatBody = (text: string): string => JSON.stringify({ choices: [{ message: { content: text } }] });

function allowedChat(over: Partial<CallObservation> = {}): CallObservation {
  const c = call('openai-chat');
  return {
    answer: { status: 200, body: chatBody(`echo: ${c.prompt!}`), peer: { subject: 'api.openai.com', issuer: ISSUERS.bundle } },
    upstream: [upstream({})],
    reported: answer(7, 8),
    metered: { input: 7, output: 8 },
    decision: 'allow',
    ...over,
  };
}

describe('evaluateCall', () => {
  it('passes an allowed call whose metered tokens equal what the provider reported', () => {
    const o = evaluateCall(call('openai-chat'), allowedChat(), ISSUERS);
    expect(o).toMatchObject({ ok: true, failures: [], status: 200, decision: 'allow', reportedTokens: { input: 7, output: 8 }, meteredTokens: { input: 7, output: 8 }, upstreamRequests: 1 });
  });

  it.each<[string, Partial<CallObservation>, RegExp]>([
    ['tokens metered wrong', { metered: { input: 7, output: 0 } }, /metered 7\+0 tokens, the provider reported 7\+8/],
    ['a wrong status', { answer: { status: 502, body: '', peer: { subject: '', issuer: ISSUERS.bundle } } }, /status 502, expected 200/],
    ['a certificate not from the aigress CA', { answer: { status: 200, body: chatBody('echo: x'), peer: { subject: 'api.openai.com', issuer: 'someone' } } }, /issued by "someone", expected "aigress demo CA"/],
    ['no proxy decision counted', { decision: 'none' }, /proxy decision none, expected allow/],
    ['a reply that is not the provider\'s', { answer: { status: 200, body: chatBody('hello'), peer: { subject: '', issuer: ISSUERS.bundle } } }, /not the provider's echo/],
    ['no answer at all', { answer: undefined, error: 'ECONNRESET' }, /no answer: ECONNRESET/],
  ])('fails an allowed call with %s', (_name, over, message) => {
    const o = evaluateCall(call('openai-chat'), allowedChat(over), ISSUERS);
    expect(o.ok).toBe(false);
    expect(o.failures.join('; ')).toMatch(message);
  });

  it('fails a denial that let the request through to the provider', () => {
    const denied = call('model-denied');
    const body = JSON.stringify({ error: { message: 'aigress: model "gpt-4o-realtime-preview" is denied', type: 'permission_error' } });
    const base: CallObservation = {
      answer: { status: 403, body, deniedBy: 'policy', peer: { subject: 'api.openai.com', issuer: ISSUERS.bundle } },
      upstream: [],
      metered: { input: 0, output: 0 },
      decision: 'deny',
    };
    expect(evaluateCall(denied, base, ISSUERS)).toMatchObject({ ok: true, deniedBy: 'policy', denialMessage: 'aigress: model "gpt-4o-realtime-preview" is denied', reportedTokens: null });
    const leaked = evaluateCall(denied, { ...base, upstream: [upstream({})] }, ISSUERS);
    expect(leaked.failures).toContain('1 requests reached the provider, expected none');
    const unshaped = evaluateCall(denied, { ...base, answer: { ...base.answer!, body: 'denied' } }, ISSUERS);
    expect(unshaped.failures.join()).toMatch(/not in OpenAI's error shape/);
    const notMarked = evaluateCall(denied, { ...base, answer: { ...base.answer!, deniedBy: undefined } as never }, ISSUERS);
    expect(notMarked.failures).toContain('x-aigress-denied (none), expected policy');
  });

  it('fails the stream when the app got a usage chunk, or the proxy did not ask upstream for usage', () => {
    const c = call('openai-stream');
    const sse = (chunks: unknown[]): string => chunks.map((x) => `data: ${JSON.stringify(x)}\n\n`).join('') + 'data: [DONE]\n\n';
    const words = `echo: ${c.prompt!}`.split(/(?<= )/).map((w) => ({ choices: [{ delta: { content: w } }] }));
    const asked = upstream({ stream: true, stream_options: { include_usage: true } });
    const obs = (body: string, sent: RequestRecord): CallObservation => ({
      answer: { status: 200, body, peer: { subject: '', issuer: ISSUERS.bundle } },
      upstream: [sent],
      reported: answer(5, 6),
      metered: { input: 5, output: 6 },
      decision: 'allow',
    });
    expect(evaluateCall(c, obs(sse(words), asked), ISSUERS).ok).toBe(true);
    expect(evaluateCall(c, obs(sse([...words, { choices: [], usage: { prompt_tokens: 5 } }]), asked), ISSUERS).failures).toEqual(['the app received a usage chunk it did not ask for']);
    expect(evaluateCall(c, obs(sse(words), upstream({ stream: true })), ISSUERS).failures).toEqual(['the proxy did not ask the provider for usage (stream_options.include_usage)']);
  });

  it('fails tokens metered for a call the provider never answered', () => {
    const o = evaluateCall(call('passthrough'), {
      answer: { status: 200, body: 'fake example.org: GET /\n', peer: { subject: 'example.org', issuer: ISSUERS.publicRoots } },
      upstream: [upstream({})],
      metered: { input: 3, output: 0 },
      decision: 'passthrough',
    }, ISSUERS);
    expect(o.failures).toEqual(['metered 3+0 tokens for a call the provider never answered']);
  });
});

describe('metrics text', () => {
  const before = parseSamples('# HELP x\naigress_tokens_total{provider="openai",model="gpt-4o",type="input"} 5\nother 1\n');
  const after = parseSamples([
    'aigress_tokens_total{provider="openai",model="gpt-4o",type="input"} 12',
    'aigress_tokens_total{provider="openai",model="gpt-4o",type="output"} 3',
    'aigress_tokens_total{provider="anthropic",model="a \\"quoted\\" name",type="input"} 0',
    'other 1',
  ].join('\n'));

  it('reads labels (with escapes) and sums by label subset', () => {
    expect(after[2]!.labels.model).toBe('a "quoted" name');
    expect(sumSamples(after, 'aigress_tokens_total', { provider: 'openai' })).toBe(15);
    expect(sumSamples(after, 'aigress_tokens_total', { type: 'input' })).toBe(12);
  });

  it('reports only the series that grew, new ones included', () => {
    expect(growth(before, after, 'aigress_tokens_total').map((g) => [g.labels.type, g.by])).toEqual([['input', 7], ['output', 3]]);
    expect(growth(after, after, 'aigress_tokens_total')).toEqual([]);
  });
});

describe('proxy args from the injected spec', () => {
  it('reads the standalone args injection writes with the proxy\'s own flag parser', () => {
    const config = { ...defaultConfig().injection };
    config.controlPlane = { ...config.controlPlane, address: '' };
    config.proxy = { ...config.proxy, extraArgs: ['--policy', '/p.yaml', '--ca-dir', '/ca'] };
    const pod = inject(samplePod(), { namespace: 'team-a' }, config).pod!;
    const proxy = pod.spec.initContainers!.find((c) => c.name === 'aigress-proxy')!;
    const parsed = proxyConfigFromArgs(proxy.args as string[]);
    expect(parsed).toMatchObject({ capturePort: 14001, adminPort: 14020, bundleDir: '/var/run/aigress/ca', mode: { kind: 'standalone', policyFile: '/p.yaml', caDir: '/ca' } });
  });

  it('rejects what the proxy would reject', () => {
    expect(() => proxyConfigFromArgs(['init'])).toThrow('do not start with the proxy subcommand');
    expect(() => proxyConfigFromArgs(['proxy', '--frobnicate', '1'])).toThrow(/frobnicate/);
    expect(() => proxyConfigFromArgs(['proxy', '--capture-port', 'x', '--policy', 'p', '--ca-dir', 'c'])).toThrow("--capture-port: expected a port number 0-65535, got 'x'");
  });
});

describe('summarizeInjection', () => {
  it('lists what the patch added and nothing the pod already had', () => {
    const before = samplePod();
    const after = inject(before, { namespace: 'team-a' }, defaultConfig().injection).pod!;
    const s = summarizeInjection(before, after);
    expect(s.initContainers.map((c) => [c.name, c.restartPolicy, c.runAsUser])).toEqual([['aigress-init', undefined, 0], ['aigress-proxy', 'Always', 1500]]);
    expect(s.containers).toEqual([]);
    expect(s.env.map((e) => e.name)).toContain('SSL_CERT_FILE');
    expect(s.env.map((e) => e.name)).not.toContain('OPENAI_API_KEY'); // the app's own, unchanged
    expect(s.env.find((e) => e.name === 'SSL_CERT_FILE')).toEqual({ container: 'app', name: 'SSL_CERT_FILE', value: '/var/run/aigress/ca/bundle.pem' });
    expect(s.mounts).toEqual([{ container: 'app', name: 'aigress-ca', mountPath: '/var/run/aigress/ca', readOnly: true }]);
    expect(s.volumes.map((v) => v.name).sort()).toEqual(['aigress-ca', 'aigress-init-run', 'aigress-token']);
    expect(Object.keys(s.annotations)).toEqual(['aigress.io/status']);
  });
});
