import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  ANTHROPIC_HOST,
  BEDROCK_EU_HOST,
  createTestPki,
  OPENAI_HOST,
  PLAIN_HOST,
  startFakeProvider,
  type FakeProvider,
  type TestPki,
} from './support/fake-provider.js';
import { createPodNetwork, type PodNetwork } from './support/netns.js';
import { APPS_DIR, CURL, PYTHON } from './support/paths.js';
import { IMAGE_PATH, PodHarness } from './support/pod.js';
import type { Pod } from './support/pod-spec.js';
import { describeRoot } from './support/require-root.js';

// The harness checked without aigress: the pod's namespace reaches the fake provider by the providers' real
// names, and every unmodified app (curl, the openai, Anthropic and Bedrock SDKs, Python requests) talks to it
// successfully when it trusts the test root directly. When pod.test.ts fails, this file tells whether the
// fault is in the harness or in aigress.

describeRoot('e2e harness without aigress: pod netns → fake provider', () => {
  let dir: string;
  let net: PodNetwork;
  let pki: TestPki;
  let fake: FakeProvider;
  let pod: PodHarness;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'aig-e2e-harness-'));
    chmodSync(dir, 0o755);
    const home = join(dir, 'home');
    mkdirSync(home);
    chownSync(home, 1000, 1000);
    const hosts = [OPENAI_HOST, ANTHROPIC_HOST, BEDROCK_EU_HOST, PLAIN_HOST];
    net = await createPodNetwork({ hosts, mapIpv6: false });
    pki = await createTestPki(dir, hosts);
    fake = await startFakeProvider({ outsideNs: net.out, pki, dir, bedrockHosts: [BEDROCK_EU_HOST] });
    // A plain pod (not injected): the app trusts the test root itself, through the same env vars aigress sets.
    const spec: Pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'harness', namespace: 'e2e' },
      spec: {
        containers: [
          {
            name: 'app',
            command: ['sleep', 'infinity'],
            securityContext: { runAsUser: 1000, runAsGroup: 1000, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } },
            env: [
              { name: 'OPENAI_API_KEY', value: 'sk-e2e-harness' },
              { name: 'ANTHROPIC_API_KEY', value: 'sk-ant-e2e-harness' },
              { name: 'AWS_ACCESS_KEY_ID', value: 'AKIAE2EHARNESS000000' },
              { name: 'AWS_SECRET_ACCESS_KEY', value: 'e2e-harness-aws-secret' },
              ...['SSL_CERT_FILE', 'NODE_EXTRA_CA_CERTS', 'REQUESTS_CA_BUNDLE', 'CURL_CA_BUNDLE'].map((name) => ({ name, value: pki.rootFile })),
            ],
          },
        ],
      },
    };
    pod = new PodHarness({ net, pod: spec, dir, entrypoint: {}, imageEnv: { app: { PATH: IMAGE_PATH, HOME: home } } });
  });

  afterAll(async () => {
    await fake?.stop();
    await net?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('curl reaches https://api.openai.com by name, verified against the test root, from the pod address', async () => {
    const mark = fake.mark();
    const prompt = `harness curl ${Date.now()}`;
    const body = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: prompt }] });
    const r = await pod.exec('app', [
      CURL, '-sS', '--fail-with-body', `https://${OPENAI_HOST}/v1/chat/completions`,
      '-H', 'content-type: application/json', '-H', 'authorization: Bearer sk-e2e-harness', '-d', body,
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).choices[0].message.content).toBe(`echo: ${prompt}`);
    const [req] = fake.requestsSince(mark);
    expect(req).toMatchObject({ sni: OPENAI_HOST, host: OPENAI_HOST, remoteAddress: net.podAddr, path: '/v1/chat/completions' });
  });

  it('the app runs as UID 1000 with only its spec env', async () => {
    const r = await pod.exec('app', ['/usr/bin/sh', '-c', 'id -u; id -G; env | sort']);
    const [uid, groups, ...env] = r.stdout.trim().split('\n');
    expect(uid).toBe('1000');
    expect(groups).toBe('1000');
    expect(env.map((l) => l.split('=')[0]).sort()).toEqual(
      ['ANTHROPIC_API_KEY', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'CURL_CA_BUNDLE', 'HOME', 'NODE_EXTRA_CA_CERTS', 'OPENAI_API_KEY', 'PATH', 'PWD', 'REQUESTS_CA_BUNDLE', 'SSL_CERT_FILE'].sort(),
    );
  });

  it.each([
    ['openai SDK, non-streaming', ['openai-chat.mjs', 'chat', 'gpt-4o-mini'], OPENAI_HOST, '/v1/chat/completions'],
    ['openai SDK, streaming', ['openai-chat.mjs', 'stream', 'gpt-4o-mini'], OPENAI_HOST, '/v1/chat/completions'],
    ['Anthropic SDK, non-streaming', ['anthropic.mjs', 'create', 'claude-haiku-4-5'], ANTHROPIC_HOST, '/v1/messages'],
    ['Anthropic SDK, streaming', ['anthropic.mjs', 'stream', 'claude-haiku-4-5'], ANTHROPIC_HOST, '/v1/messages'],
    ['Python requests, non-streaming', ['requests_app.py', 'chat', 'gpt-4o-mini'], OPENAI_HOST, '/v1/chat/completions'],
    ['Python requests, streaming', ['requests_app.py', 'stream', 'gpt-4o-mini'], OPENAI_HOST, '/v1/chat/completions'],
  ])('%s talks to the fake provider unmodified', async (_name, [script, mode, model], host, path) => {
    const mark = fake.mark();
    const prompt = `harness ${mode} ${script} ${Date.now()}`;
    const interpreter = script!.endsWith('.py') ? PYTHON : process.execPath;
    const r = await pod.exec('app', [interpreter, join(APPS_DIR, script!), mode!, model!, prompt]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { content: string; usage: Record<string, number> | null };
    expect(out.content).toBe(`echo: ${prompt}`);
    expect(out.usage).not.toBeNull();
    const reqs = fake.requestsSince(mark);
    expect(reqs).toHaveLength(1);
    expect(reqs[0]).toMatchObject({ sni: host, host, path, remoteAddress: net.podAddr });
    expect(JSON.parse(reqs[0]!.body).stream ?? false).toBe(mode === 'stream');
  });

  // The SDK's HTTP/1.1 handler: the fake provider speaks HTTP/1.1 only (the proxy speaks h2 to apps, HTTP/1.1 upstream).
  it.each([
    ['Converse', 'converse', '/converse'],
    ['ConverseStream', 'stream', '/converse-stream'],
  ])('the AWS SDK\'s Bedrock %s talks to the fake provider unmodified, SigV4-signed', async (_name, mode, action) => {
    const mark = fake.mark();
    const prompt = `harness bedrock ${mode} ${Date.now()}`;
    const r = await pod.exec('app', [process.execPath, join(APPS_DIR, 'bedrock.mjs'), mode, 'eu-central-1', 'amazon.nova-lite-v1:0', prompt, '--http1']);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { content: string; usage: { inputTokens: number; outputTokens: number } | null };
    expect(out.content).toBe(`echo: ${prompt}`);
    expect(out.usage).toMatchObject({ inputTokens: prompt.split(' ').length });
    const reqs = fake.requestsSince(mark);
    expect(reqs).toHaveLength(1);
    expect(reqs[0]).toMatchObject({ sni: BEDROCK_EU_HOST, host: BEDROCK_EU_HOST, path: `/model/amazon.nova-lite-v1%3A0${action}`, remoteAddress: net.podAddr });
    expect(reqs[0]!.headers.authorization).toMatch(/^AWS4-HMAC-SHA256 Credential=AKIAE2EHARNESS000000\/\d{8}\/eu-central-1\/bedrock\//);
  });

  it('the non-AI host answers with its own certificate, and plain HTTP works too', async () => {
    const https = await pod.exec('app', [CURL, '-sS', '--fail', `https://${PLAIN_HOST}/hello`]);
    expect(https.stdout).toBe(`fake ${PLAIN_HOST}: GET /hello\n`);
    const http = await pod.exec('app', [CURL, '-sS', '--fail', `http://${PLAIN_HOST}/plain`]);
    expect(http.stdout).toBe(`fake ${PLAIN_HOST}: GET /plain\n`);
  });
});
