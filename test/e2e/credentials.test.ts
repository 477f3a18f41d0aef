import { chmodSync, chownSync, mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import aws4 from 'aws4';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { PROXY_UID } from '../../shared/constants.js';
import { ANTHROPIC_HOST, BEDROCK_EU_HOST, OPENAI_HOST, PLAIN_HOST, type RequestRecord } from './support/fake-provider.js';
import { APPS_DIR } from './support/paths.js';
import { APP, PodSession } from './support/pod-session.js';
import type { Background, RunResult } from './support/process.js';
import { describeRoot } from './support/require-root.js';

// Managed credentials in the pod played for real (issue 11): the app's own spec holds only a placeholder key and
// dummy AWS credentials; unmodified SDKs (openai, @anthropic-ai/sdk, the AWS SDK's Bedrock Converse and
// ConverseStream) call as usual; the proxy, started from the injected spec with --credentials-dir (a directory
// laid out as a mounted Secret, readable by the proxy's UID only), puts the managed keys on the calls and signs
// Bedrock with SigV4. The fake provider records what it received; the SigV4 signature it got is recomputed here
// with aws4 from the recorded request. Rotating a file changes the key of the next requests.

const PLACEHOLDER = 'aigress-managed-credential';
const OPENAI_KEY = 'sk-proj-E2E-MANAGED-openai-5a5a';
const OPENAI_KEY2 = 'sk-proj-E2E-ROTATED-openai-6b6b';
const ANTHROPIC_KEY = 'sk-ant-E2E-MANAGED-anthropic-7c7c';
const AWS_ID = 'AKIAE2EMANAGED000001';
const AWS_SECRET = 'e2e/Managed+Secret/0123456789abcdefABCDEF';
const APP_AWS_ID = 'AKIAAPPDUMMY00000000';
const ALL_KEYS = [OPENAI_KEY, OPENAI_KEY2, ANTHROPIC_KEY, AWS_SECRET];

const credDir = mkdtempSync(join(tmpdir(), 'aig-e2e-creds-'));
let generation = 0;
/** A Secret volume as the kubelet writes one (timestamped dir, `..data` swapped atomically), owned by the proxy. */
function writeSecret(name: string, data: Record<string, string>): void {
  const dir = join(credDir, name);
  mkdirSync(dir, { recursive: true });
  const gen = `..gen_${++generation}`;
  mkdirSync(join(dir, gen));
  for (const [k, v] of Object.entries(data)) writeFileSync(join(dir, gen, k), v, { mode: 0o400 });
  symlinkSync(gen, join(dir, '..data_tmp'));
  renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
  for (const k of Object.keys(data)) {
    try {
      symlinkSync(join('..data', k), join(dir, k));
    } catch {
      // already linked through ..data
    }
  }
  for (const p of [credDir, dir, join(dir, gen), ...Object.keys(data).map((k) => join(dir, gen, k))]) chownSync(p, PROXY_UID, PROXY_UID);
  chmodSync(credDir, 0o700);
}

const POLICY = `apiVersion: aigress.io/v1alpha1
kind: EgressPolicy
metadata: { name: e2e-managed, namespace: team-a }
spec:
  providers: [openai, anthropic, bedrock]
  credentials:
    - { provider: openai, secretRef: { name: openai-key, key: apiKey } }
    - { provider: anthropic, secretRef: { name: anthropic-key, key: apiKey } }
    - { provider: bedrock, secretRef: { name: aws, key: secretAccessKey }, accessKeyIdKey: accessKeyId }
  unmatchedEgress: passthrough
`;

describeRoot('managed credentials in the pod (issue 11): the app holds a placeholder, the provider gets the managed key', () => {
  const session = new PodSession({
    tmpPrefix: 'aig-e2e-creds-pod-',
    hosts: [OPENAI_HOST, ANTHROPIC_HOST, BEDROCK_EU_HOST, PLAIN_HOST],
    fakeHosts: { openaiHosts: [OPENAI_HOST], anthropicHosts: [ANTHROPIC_HOST], bedrockHosts: [BEDROCK_EU_HOST] },
    keys: { openai: PLACEHOLDER, anthropic: PLACEHOLDER },
    app: { policy: POLICY, appEnv: { AWS_ACCESS_KEY_ID: APP_AWS_ID, AWS_SECRET_ACCESS_KEY: 'app-dummy-secret' }, proxyArgs: ['--credentials-dir', credDir] },
  });
  let proxy: Background;
  const app = (argv: readonly string[]): Promise<RunResult> => session.pod.exec(APP, argv, { timeoutMs: 45_000 });
  const ok = (r: RunResult): void => expect({ code: r.code, stderr: r.stderr.slice(-2000) }).toMatchObject({ code: 0 });

  beforeAll(async () => {
    writeSecret('openai-key', { apiKey: `${OPENAI_KEY}\n` });
    writeSecret('anthropic-key', { apiKey: ANTHROPIC_KEY });
    writeSecret('aws', { accessKeyId: AWS_ID, secretAccessKey: AWS_SECRET });
    await session.start();
    proxy = await session.startProxy();
  });
  afterAll(async () => {
    await session.stop();
    rmSync(credDir, { recursive: true, force: true });
  });

  const lastRequest = (mark: number): RequestRecord => {
    const reqs = session.fake.requestsSince(mark);
    expect(reqs.length).toBeGreaterThan(0);
    return reqs.at(-1)!;
  };

  it('OpenAI SDK with a placeholder key: the provider receives the managed key only', async () => {
    const mark = session.fake.mark();
    ok(await app([process.execPath, join(APPS_DIR, 'openai-chat.mjs'), 'chat', 'gpt-4o-mini', 'hello managed']));
    const r = lastRequest(mark);
    expect(r.headers.authorization).toBe(`Bearer ${OPENAI_KEY}`);
    expect(JSON.stringify(r.headers)).not.toContain(PLACEHOLDER);
  });

  it('Anthropic SDK with a placeholder key: x-api-key is the managed key, anthropic-version as the SDK sent it', async () => {
    const mark = session.fake.mark();
    ok(await app([process.execPath, join(APPS_DIR, 'anthropic.mjs'), 'create', 'claude-3-5-haiku-latest', 'hello managed']));
    const r = lastRequest(mark);
    expect(r.headers['x-api-key']).toBe(ANTHROPIC_KEY);
    expect(r.headers['anthropic-version']).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    expect(JSON.stringify(r.headers)).not.toContain(PLACEHOLDER);
  });

  for (const [mode, transport] of [['converse', ['--http1']], ['stream', ['--http1']], ['converse', []], ['stream', []]] as const) {
    it(`AWS SDK Bedrock ${mode === 'stream' ? 'ConverseStream' : 'Converse'} (${transport.length ? 'HTTP/1.1' : 'default HTTP/2'}) with dummy credentials: re-signed with the managed keys, signature verified`, async () => {
      const mark = session.fake.mark();
      ok(await app([process.execPath, join(APPS_DIR, 'bedrock.mjs'), mode, 'eu-central-1', 'amazon.nova-lite-v1:0', 'hello managed', ...transport]));
      const r = lastRequest(mark);
      const auth = String(r.headers.authorization);
      expect(auth).toMatch(new RegExp(`^AWS4-HMAC-SHA256 Credential=${AWS_ID}/\\d{8}/eu-central-1/bedrock/aws4_request, `));
      expect(JSON.stringify(r.headers)).not.toContain(APP_AWS_ID);
      // Recompute over exactly the headers the signature names, from what the provider received.
      const signedNames = /SignedHeaders=([^,]+)/.exec(auth)![1]!.split(';');
      const headers = Object.fromEntries(signedNames.map((n) => [n, String(r.headers[n])]));
      const again = aws4.sign({ host: BEDROCK_EU_HOST, method: r.method, path: r.path, headers, body: r.body, service: 'bedrock', region: 'eu-central-1' }, { accessKeyId: AWS_ID, secretAccessKey: AWS_SECRET });
      expect(auth).toBe((again.headers as Record<string, string>).Authorization);
      expect(signedNames).toEqual(expect.arrayContaining(['host', 'x-amz-date', 'content-length']));
    });
  }

  it('rotating the key file changes the key the next requests carry', async () => {
    writeSecret('openai-key', { apiKey: OPENAI_KEY2 });
    let got: string | undefined;
    for (let i = 0; i < 20 && got !== `Bearer ${OPENAI_KEY2}`; i++) {
      const mark = session.fake.mark();
      ok(await app([process.execPath, join(APPS_DIR, 'openai-chat.mjs'), 'chat', 'gpt-4o-mini', `after rotation ${i}`]));
      got = String(lastRequest(mark).headers.authorization);
      expect([`Bearer ${OPENAI_KEY}`, `Bearer ${OPENAI_KEY2}`]).toContain(got);
    }
    expect(got).toBe(`Bearer ${OPENAI_KEY2}`);
  });

  it('the app cannot read the credentials directory', async () => {
    const r = await app(['/bin/cat', join(credDir, 'openai-key', 'apiKey')]);
    expect(r.code).not.toBe(0);
    expect(r.stdout).not.toContain('sk-proj');
  });

  it('neither the injected spec nor any log line holds a key, in clear or base64', async () => {
    // The proxy writes its log in batches, flushed periodically: wait for the rotation's line to arrive.
    for (let i = 0; i < 100 && !proxy.stdout.includes('credential changed'); i++) await new Promise((r) => setTimeout(r, 50));
    expect(proxy.stdout).toContain('credential changed');
    const text = `${session.files.injectedYaml}\n${proxy.stdout}\n${proxy.stderr}`;
    for (const key of ALL_KEYS) {
      for (const form of [key, Buffer.from(key).toString('base64'), Buffer.from(key).toString('base64url')]) expect(text).not.toContain(form);
    }
  });
});
