import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ANTHROPIC_HOST,
  OPENAI_HOST,
  PLAIN_HOST,
  TEST_ROOT_CN,
  type RequestRecord,
  type StreamRecord,
} from './support/fake-provider.js';
import { PROXY_CA_CN } from './support/injected-pod.js';
import { metricSum } from './support/metrics.js';
import { APPS_DIR, CURL, PYTHON } from './support/paths.js';
import { findContainer } from './support/pod-spec.js';
import { APP, INIT, PodSession, PROXY, promptLog } from './support/pod-session.js';
import type { Background, RunResult } from './support/process.js';
import { describeRoot } from './support/require-root.js';

// A pod played for real (issue #3): an app pod run through `aigress inject`; its init container's iptables
// rules applied by running `aigress init` as the injected spec says; the proxy started as the spec says
// (UID 1500, its mounts, its env); unmodified apps run as UID 1000 with only the env and mounts the spec gives
// them; the providers' real host names lead to a fake provider in the outside namespace. See README.md here.

const KEYS = { openai: 'sk-e2e-app-openai-0000', anthropic: 'sk-ant-e2e-app-0000' };
const OPENAI_MODEL = 'gpt-4o-mini';
const ANTHROPIC_MODEL = 'claude-haiku-4-5';

const { sent: sentPrompts, prompt } = promptLog();

const words = (s: string): number => s.split(/\s+/).filter(Boolean).length;

describeRoot('a pod played for real: inject → init → proxy → unmodified apps → fake provider', () => {
  const session = new PodSession({ tmpPrefix: 'aig-e2e-pod-', hosts: [OPENAI_HOST, ANTHROPIC_HOST, PLAIN_HOST], keys: KEYS });
  let bundleFile: string;

  async function stopProxy(proxy: Background | undefined): Promise<void> {
    if (!proxy) return;
    await proxy.stop(10_000);
  }

  function app(argv: readonly string[], timeoutMs = 30_000): Promise<RunResult> {
    return session.pod.exec(APP, argv, { timeoutMs });
  }

  function curlOpenAi(text: string, extra: readonly string[] = [], model = OPENAI_MODEL): string[] {
    const body = JSON.stringify({ model, messages: [{ role: 'user', content: text }] });
    return [
      CURL, '-sS', '-v', `https://${OPENAI_HOST}/v1/chat/completions`,
      '-H', 'content-type: application/json', '-H', `authorization: Bearer ${KEYS.openai}`, '-d', body, ...extra,
    ];
  }

  /** The issuer of the server certificate curl saw, from its -v output. */
  function issuerSeen(stderr: string): string {
    return /^\*\s+issuer: (.*)$/m.exec(stderr)?.[1] ?? '(no certificate seen)';
  }

  beforeAll(() => session.start());
  afterAll(() => session.stop());

  it('the injected spec is what the rest of this suite plays (aigress init / aigress proxy, UIDs, CA env)', () => {
    const init = findContainer(session.files.pod, INIT);
    const proxy = findContainer(session.files.pod, PROXY);
    const appSpec = findContainer(session.files.pod, APP);
    expect(init.command).toEqual(['aigress']);
    expect(init.args?.[0]).toBe('init');
    expect(proxy.command).toEqual(['aigress']);
    expect(proxy.args?.[0]).toBe('proxy');
    expect(proxy.args).toEqual(expect.arrayContaining(['--policy', session.files.policyFile, '--ca-dir', session.files.caDir]));
    expect(proxy.args).not.toContain('--control-plane');
    const env = Object.fromEntries((appSpec.env ?? []).map((e) => [e.name, e.value]));
    for (const name of ['SSL_CERT_FILE', 'NODE_EXTRA_CA_CERTS', 'REQUESTS_CA_BUNDLE', 'CURL_CA_BUNDLE']) {
      expect(env[name], name).toMatch(/\/bundle\.pem$/);
    }
  });

  describe('with the proxy running', () => {
    let proxy: Background;

    beforeAll(async () => {
      proxy = await session.startProxy();
      const bundleDir = findContainer(session.files.pod, APP).volumeMounts!.find((m) => m.mountPath.endsWith('/ca'))!;
      const vol = session.files.pod.spec.volumes!.find((v) => v.name === bundleDir.name)!;
      bundleFile = join(session.pod.volumeDir(vol), 'bundle.pem');
    });

    afterAll(async () => {
      await stopProxy(proxy);
    });

    it('the proxy runs as UID 1500 and wrote bundle.pem = public roots + its CA, without the fake provider\'s root', async () => {
      const status = readFileSync(`/proc/${proxy.child.pid}/status`, 'utf8');
      const uid = session.proxyUid;
      expect(status).toMatch(new RegExp(`^Uid:\\s+${uid}\\s+${uid}\\s+${uid}\\s+${uid}$`, 'm'));
      const bundle = readFileSync(bundleFile, 'utf8');
      expect(bundle).toContain(session.files.caPem.trim());
      expect(bundle.match(/BEGIN CERTIFICATE/g)!.length).toBeGreaterThan(50); // public roots too
      expect(bundle).not.toContain(session.pki.rootPem.trim());
      // The downward-API env of the spec reached it: it names its pod.
      await proxy.waitFor('its "proxy ready" log line', () => proxy.stdout.includes('"msg":"proxy ready"'));
      const readyLine = proxy.stdout.split('\n').find((l) => l.includes('"msg":"proxy ready"'));
      expect(JSON.parse(readyLine ?? '{}')).toMatchObject({ namespace: 'team-a', pod: 'e2e-app', serviceAccount: 'e2e-app' });
    });

    it('curl to https://api.openai.com is mediated: aigress\'s certificate, forwarded over TLS, counted', async () => {
      const before = metricSum(await session.metrics(), 'aigress_requests_total', { provider: 'openai' });
      const mark = session.fake.mark();
      const text = prompt('curl');
      const r = await app(curlOpenAi(text, ['--fail-with-body']));
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout).choices[0].message.content).toBe(`echo: ${text}`);
      // The app saw a certificate from the proxy's CA, not the provider's own.
      expect(issuerSeen(r.stderr)).toContain(PROXY_CA_CN);
      const reqs = session.fake.requestsSince(mark);
      expect(reqs).toHaveLength(1);
      expect(reqs[0]).toMatchObject({ transport: 'https', sni: OPENAI_HOST, host: OPENAI_HOST, method: 'POST', path: '/v1/chat/completions', remoteAddress: session.net.podAddr });
      expect(reqs[0]!.headers.authorization).toBe(`Bearer ${KEYS.openai}`);
      expect(JSON.parse(reqs[0]!.body).messages[0].content).toBe(text);
      expect(await session.waitMetric('aigress_requests_total', { provider: 'openai' }, before + 1)).toBe(before + 1);
    });

    it('an app that trusts only the provider\'s real root cannot get around the proxy', async () => {
      const tlsErrors = (t: string): number => metricSum(t, 'aigress_client_tls_errors_total', { provider: 'openai' });
      const before = tlsErrors(await session.metrics());
      const mark = session.fake.mark();
      const r = await app(curlOpenAi(prompt('escape'), ['--cacert', session.pki.rootFile]));
      expect(r.code).toBe(60); // curl: peer certificate cannot be authenticated
      // The handshake that failed was with the proxy, and nothing reached the provider.
      expect(await session.waitMetric('aigress_client_tls_errors_total', { provider: 'openai' }, before + 1)).toBe(before + 1);
      expect(session.fake.since(mark)).toEqual([]);
    });

    it('a model the policy denies gets a 403 in OpenAI\'s error shape, and nothing reaches the provider', async () => {
      const mark = session.fake.mark();
      const r = await app(curlOpenAi(prompt('denied'), ['-w', '\n%{http_code}'], 'gpt-denied-1'));
      expect(r.code).toBe(0);
      const cut = r.stdout.lastIndexOf('\n');
      expect(r.stdout.slice(cut + 1)).toBe('403');
      const body = JSON.parse(r.stdout.slice(0, cut)) as { error: { message: string; type: string } };
      expect(typeof body.error.message).toBe('string');
      expect(typeof body.error.type).toBe('string');
      expect(session.fake.requestsSince(mark)).toHaveLength(0);
    });

    const apps: Array<[string, string, string[], string, string]> = [
      ['openai SDK, non-streaming', process.execPath, ['openai-chat.mjs', 'chat', OPENAI_MODEL], OPENAI_HOST, 'openai'],
      ['openai SDK, streaming', process.execPath, ['openai-chat.mjs', 'stream', OPENAI_MODEL], OPENAI_HOST, 'openai'],
      ['Anthropic SDK, non-streaming', process.execPath, ['anthropic.mjs', 'create', ANTHROPIC_MODEL], ANTHROPIC_HOST, 'anthropic'],
      ['Anthropic SDK, streaming', process.execPath, ['anthropic.mjs', 'stream', ANTHROPIC_MODEL], ANTHROPIC_HOST, 'anthropic'],
      ['Python requests, non-streaming', PYTHON, ['requests_app.py', 'chat', OPENAI_MODEL], OPENAI_HOST, 'openai'],
      ['Python requests, streaming', PYTHON, ['requests_app.py', 'stream', OPENAI_MODEL], OPENAI_HOST, 'openai'],
    ];

    it.each(apps)('%s succeeds against the real host name, unmodified, through the proxy', async (_name, interpreter, [script, mode, model], host, provider) => {
      const m0 = await session.metrics();
      const before = metricSum(m0, 'aigress_requests_total', { provider });
      const tokens = (t: string, type: string): number => metricSum(t, 'aigress_tokens_total', { provider, model: model!, type });
      const [inBefore, outBefore] = [tokens(m0, 'input'), tokens(m0, 'output')];
      const mark = session.fake.mark();
      const text = prompt(`${script} ${mode}`);
      const r = await app([interpreter, join(APPS_DIR, script!), mode!, model!, text]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const out = JSON.parse(r.stdout) as { content: string; usage: Record<string, number> | null };
      expect(out.content).toBe(`echo: ${text}`);
      // Usage reaches the app intact (the proxy reads it on the way, it must not eat it).
      const inputTokens = out.usage?.prompt_tokens ?? out.usage?.input_tokens;
      const outputTokens = out.usage?.completion_tokens ?? out.usage?.output_tokens;
      expect(inputTokens).toBe(words(text));
      expect(outputTokens).toBeGreaterThan(0);
      const reqs = session.fake.requestsSince(mark);
      expect(reqs).toHaveLength(1);
      const req = reqs[0]!;
      expect(req).toMatchObject({ transport: 'https', sni: host, host, remoteAddress: session.net.podAddr });
      expect(JSON.parse(req.body).messages[0].content).toBe(text);
      expect(JSON.parse(req.body).stream ?? false).toBe(mode === 'stream');
      if (mode === 'stream') {
        const end = await session.fake.waitFor('the stream to end', mark, (x): x is StreamRecord => x.type === 'stream-end' && x.id === req.id);
        expect(end.complete).toBe(true);
      }
      expect(await session.waitMetric('aigress_requests_total', { provider }, before + 1)).toBe(before + 1);
      // Metered: the proxy counted exactly the tokens the provider reported to the app.
      const m1 = await session.metrics();
      expect([tokens(m1, 'input') - inBefore, tokens(m1, 'output') - outBefore]).toEqual([inputTokens, outputTokens]);
    });

    it('the non-AI host passes through untouched: the app sees the outside server\'s own certificate', async () => {
      const conns = (t: string): number => metricSum(t, 'aigress_connections_total', { route: 'passthrough_name' });
      const requestsBefore = metricSum(await session.metrics(), 'aigress_requests_total');
      const passBefore = conns(await session.metrics());
      const mark = session.fake.mark();
      // Trusting only the test root works: the certificate is the server's own, not one minted by aigress.
      const own = await app([CURL, '-sS', '-v', '--fail', '--cacert', session.pki.rootFile, `https://${PLAIN_HOST}/pass`]);
      expect(own.code, own.stderr).toBe(0);
      expect(own.stdout).toBe(`fake ${PLAIN_HOST}: GET /pass\n`);
      expect(issuerSeen(own.stderr)).toContain(TEST_ROOT_CN);
      // With the pod's bundle (public roots + aigress CA) the same call fails: nothing re-signed it.
      const viaBundle = await app([CURL, '-sS', '-v', `https://${PLAIN_HOST}/bundle`]);
      expect(viaBundle.code).toBe(60);
      // Plain HTTP to it passes too.
      const plain = await app([CURL, '-sS', '--fail', `http://${PLAIN_HOST}/plain`]);
      expect(plain.stdout).toBe(`fake ${PLAIN_HOST}: GET /plain\n`);
      const reqs = session.fake.requestsSince(mark);
      expect(reqs.map((x) => [x.transport, x.path, x.remoteAddress])).toEqual([
        ['https', '/pass', session.net.podAddr],
        ['http', '/plain', session.net.podAddr],
      ]);
      expect(reqs[0]!.sni).toBe(PLAIN_HOST);
      expect(await session.waitMetric('aigress_connections_total', { route: 'passthrough_name' }, passBefore + 3)).toBe(passBefore + 3);
      expect(metricSum(await session.metrics(), 'aigress_requests_total')).toBe(requestsBefore);
    });

    it('traffic of UID 1500 is not redirected: it reaches the provider directly with the provider\'s certificate', async () => {
      const connsBefore = metricSum(await session.metrics(), 'aigress_connections_total');
      const mark = session.fake.mark();
      const text = prompt('uid1500');
      // Run in the proxy's container (its UID, mounts and env), the way `kubectl exec -c aigress-proxy` would.
      const r = await session.pod.exec(PROXY, curlOpenAi(text, ['--fail-with-body', '--cacert', session.pki.rootFile]));
      expect(r.code, r.stderr).toBe(0);
      expect(issuerSeen(r.stderr)).toContain(TEST_ROOT_CN);
      expect(JSON.parse(r.stdout).choices[0].message.content).toBe(`echo: ${text}`);
      const reqs = session.fake.requestsSince(mark);
      expect(reqs).toHaveLength(1);
      // curl offers h2; the fake only speaks http/1.1, so ALPN cannot tell them apart. The certificate can.
      expect(reqs[0]).toMatchObject({ sni: OPENAI_HOST, remoteAddress: session.net.podAddr });
      expect(metricSum(await session.metrics(), 'aigress_connections_total')).toBe(connsBefore);
    });

    it('IPv6 is captured too: an AI call to the provider\'s IPv6 address goes through the proxy', async () => {
      const mark = session.fake.mark();
      const text = prompt('ipv6');
      const r = await app(curlOpenAi(text, ['--fail-with-body', '--resolve', `${OPENAI_HOST}:443:[${session.net.outAddr6}]`]));
      expect(r.code, r.stderr).toBe(0);
      expect(issuerSeen(r.stderr)).toContain(PROXY_CA_CN);
      expect(JSON.parse(r.stdout).choices[0].message.content).toBe(`echo: ${text}`);
      const reqs = session.fake.requestsSince(mark);
      expect(reqs).toHaveLength(1);
      expect(reqs[0]!.sni).toBe(OPENAI_HOST);
    });

    it('the proxy logs no API key and no prompt text', async () => {
      const logs = proxy.stdout + proxy.stderr;
      expect(sentPrompts.length).toBeGreaterThan(5);
      expect(logs).toContain('"path":"/v1/chat/completions"'); // it does log the requests, just not their secrets
      expect(logs).not.toContain(KEYS.openai);
      expect(logs).not.toContain(KEYS.anthropic);
      for (const text of sentPrompts) expect(logs).not.toContain(text);
    });
  });

  describe('SIGTERM while a stream is open', () => {
    it('the stream completes, readiness drops at once, and the proxy exits 0', async () => {
      const proxy = await session.startProxy();
      let exited = false;
      try {
        expect(readFileSync(`/proc/${proxy.child.pid}/cmdline`, 'utf8')).toContain('aigress.js');
        const mark = session.fake.mark();
        const text = prompt('drain');
        // "slow" models make the fake provider stream for ~3 s.
        const stream = session.pod.start(APP, { argv: [process.execPath, join(APPS_DIR, 'openai-chat.mjs'), 'stream', 'gpt-4o-slow', text] });
        const req = await session.fake.waitFor('the slow stream to start', mark, (x): x is RequestRecord => x.type === 'request');
        await session.fake.waitFor('the first events to be sent', mark, (x): x is StreamRecord => x.type === 'stream-start' && x.id === req.id);

        const sigtermAt = Date.now();
        proxy.child.kill('SIGTERM');
        // Not ready from the moment it drains, so no new traffic is sent its way.
        const ready = await session.pod.httpGet(session.adminPort, '/readyz');
        expect(ready.status).toBe(503);

        const [appStatus, proxyStatus] = await Promise.all([stream.exited, proxy.exited]);
        exited = true;
        expect(stream.stderr).toBe('');
        expect(appStatus.code).toBe(0);
        const out = JSON.parse(stream.stdout) as { content: string; usage: { prompt_tokens: number } };
        expect(out.content.startsWith(`echo: ${text}`)).toBe(true);
        expect(out.usage.prompt_tokens).toBe(words(text));
        const end = await session.fake.waitFor('the stream to end', mark, (x): x is StreamRecord => x.type === 'stream-end' && x.id === req.id);
        expect(end.complete).toBe(true);
        expect(end.at).toBeGreaterThan(sigtermAt); // the stream was still open when the proxy got SIGTERM
        expect(proxyStatus).toEqual({ code: 0, signal: null });
      } finally {
        if (!exited) await stopProxy(proxy);
      }
    });
  });

  describe('with the proxy stopped', () => {
    beforeAll(async () => {
      // Nothing answers on the admin port: no proxy runs in the pod.
      expect((await session.pod.httpGet(session.adminPort, '/healthz')).status).toBe(0);
    });

    // How each client says "connection refused": curl exits 7, the SDKs throw APIConnectionError with the
    // ECONNREFUSED cause, requests raises ConnectionError with errno 111.
    it.each([
      ['curl', () => [CURL, '-sS', `https://${OPENAI_HOST}/v1/models`], /^curl: \(7\) Failed to connect/],
      ['openai SDK', () => [process.execPath, join(APPS_DIR, 'openai-chat.mjs'), 'chat', OPENAI_MODEL, prompt('stopped')], /APIConnectionError[\s\S]*ECONNREFUSED/],
      ['Anthropic SDK', () => [process.execPath, join(APPS_DIR, 'anthropic.mjs'), 'create', ANTHROPIC_MODEL, prompt('stopped')], /APIConnectionError[\s\S]*ECONNREFUSED/],
      ['Python requests', () => [PYTHON, join(APPS_DIR, 'requests_app.py'), 'chat', OPENAI_MODEL, prompt('stopped')], /ConnectionError[\s\S]*Connection refused/],
      ['curl over IPv6', () => [CURL, '-sS', '--resolve', `${OPENAI_HOST}:443:[${session.net.outAddr6}]`, `https://${OPENAI_HOST}/v1/models`], /^curl: \(7\) Failed to connect/],
    ] as Array<[string, () => string[], RegExp]>)('%s to an AI host fails (connection refused) and nothing leaves the pod', async (_name, argv, refused) => {
      const mark = session.fake.mark();
      const r = await app(argv(), 45_000);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(refused);
      expect(session.fake.since(mark)).toEqual([]);
    });
  });
});
