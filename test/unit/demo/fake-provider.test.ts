import { spawn } from 'node:child_process';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BedrockRuntimeClient, ConverseCommand, ConverseStreamCommand, type ConverseStreamOutput } from '@aws-sdk/client-bedrock-runtime';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkFakeProviderConfig } from '../../../cli/demo/fake-provider-config.js';
import { startFakeProvider, type AnswerRecord, type FakeProviderHandle, type FakeRecord, type RequestRecord } from '../../../cli/demo/fake-provider.js';
import { httpsCall } from '../../../cli/demo/https-client.js';
import { sseData } from '../../../cli/demo/calls.js';
import { createCA, issueLeaf, loadCA } from '../../../shared/pki.js';
import { EventStreamDecoder, type EventStreamMessage } from '../../../shared/providers/event-stream.js';
import { ensureDemoBuilt, FAKE_PROVIDER_MAIN } from './built.js';

// The fake provider both the demo (in-process) and the e2e suite (as its own process) use: its answers, the usage
// it reports, and the records it writes before answering.

const OPENAI = 'api.openai.com';
const ANTHROPIC = 'api.anthropic.com';
const PLAIN = 'example.org';
const BEDROCK = 'bedrock-runtime.eu-central-1.amazonaws.com';

let rootPem: string;
let certs: Record<string, { cert: string; key: string }>;

beforeAll(async () => {
  const root = await createCA('fake provider test root', 1);
  rootPem = root.certPem;
  const ca = await loadCA(root.certPem, root.keyPem);
  certs = {};
  for (const host of [OPENAI, ANTHROPIC, PLAIN, BEDROCK]) {
    const leaf = await issueLeaf(ca, { dnsNames: [host] });
    certs[host] = { cert: leaf.certPem, key: leaf.keyPem };
  }
});

const openAiHeaders = { 'content-type': 'application/json', authorization: 'Bearer sk-test' };
const anthropicHeaders = { 'content-type': 'application/json', 'x-api-key': 'k', 'anthropic-version': '2023-06-01' };

describe('startFakeProvider (in-process)', () => {
  let fake: FakeProviderHandle;
  const seen: FakeRecord[] = [];
  const call = (host: string, path: string, headers: Record<string, string>, body: unknown): ReturnType<typeof httpsCall> =>
    httpsCall({ port: fake.httpsPort, servername: host, ca: rootPem, method: 'POST', path, headers, body: JSON.stringify(body) });

  beforeAll(async () => {
    fake = await startFakeProvider({
      httpsPort: 0,
      httpPort: 0,
      listenAddress: '127.0.0.1',
      certs,
      defaultHost: PLAIN,
      openaiHosts: [OPENAI],
      anthropicHosts: [ANTHROPIC],
      bedrockHosts: [BEDROCK],
      onRecord: (r) => seen.push(r),
    });
  });
  afterAll(() => fake?.close());

  it('reports ready with its own pid once both ports listen', () => {
    expect(fake.records[0]).toMatchObject({ type: 'ready', pid: process.pid });
    expect(fake.httpsPort).toBeGreaterThan(0);
    expect(fake.httpPort).toBeGreaterThan(0);
    expect(fake.httpsPort).not.toBe(fake.httpPort);
  });

  it('answers OpenAI chat with an echo of the last user message and usage counted from it, and records the request first', async () => {
    const mark = fake.records.length;
    const prompt = 'three little words';
    const r = await call(OPENAI, '/v1/chat/completions', openAiHeaders, {
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'earlier' }, { role: 'assistant', content: 'x' }, { role: 'user', content: prompt }],
    });
    expect(r.status).toBe(200);
    expect(r.peer).toEqual({ subject: OPENAI, issuer: 'fake provider test root' });
    const body = JSON.parse(r.body);
    expect(body.choices[0].message.content).toBe(`echo: ${prompt}`);
    // "echo: three little words" goes out as 4 pieces; the prompt is 3 words.
    expect(body.usage).toEqual({ prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 });
    const answer = fake.answers.at(-1)!;
    expect(answer).toMatchObject({ provider: 'openai', model: 'gpt-4o-mini', stream: false, usage: { input: 3, output: 4 }, usageSent: true });
    const since = fake.records.slice(mark);
    expect(since.map((x) => x.type)).toEqual(['connection', 'request', 'answer']);
    const req = since[1] as RequestRecord;
    // The answer is a record too (a process's record file is all an e2e test sees of it).
    expect(since[2]).toEqual({ type: 'answer', at: expect.any(Number), ...answer });
    expect(req).toMatchObject({ transport: 'https', sni: OPENAI, alpn: null, method: 'POST', path: '/v1/chat/completions', host: OPENAI, remoteAddress: '127.0.0.1' });
    expect(req.id).toBe(answer.id);
    expect(JSON.parse(req.body).messages[2].content).toBe(prompt);
    expect(seen).toEqual(fake.records); // the sink saw every record, in the same order
  });

  it('streams OpenAI chat with usage only when stream_options.include_usage asks for it', async () => {
    const plain = await call(OPENAI, '/v1/chat/completions', openAiHeaders, { model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: 'a b' }] });
    const plainChunks = sseData(plain.body);
    expect(plainChunks.some((c) => (c as { usage?: unknown }).usage !== undefined)).toBe(false);
    expect(plain.body.trimEnd().endsWith('data: [DONE]')).toBe(true);
    expect(fake.answers.at(-1)).toMatchObject({ stream: true, usageSent: false, usage: { input: 2, output: 3 } });

    const mark = fake.records.length;
    const withUsage = await call(OPENAI, '/v1/chat/completions', openAiHeaders, {
      model: 'gpt-4o',
      stream: true,
      stream_options: { include_usage: true },
      messages: [{ role: 'user', content: 'a b' }],
    });
    const chunks = sseData(withUsage.body) as { usage?: unknown; choices: { delta: { content?: string } }[] }[];
    expect(chunks.at(-1)).toMatchObject({ choices: [], usage: { prompt_tokens: 2, completion_tokens: 3, total_tokens: 5 } });
    expect(chunks.slice(0, -1).every((c) => c.usage === null)).toBe(true);
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe('echo: a b');
    const id = fake.answers.at(-1)!.id;
    const end = fake.records.slice(mark).find((x) => x.type === 'stream-end');
    expect(end).toMatchObject({ id, events: chunks.length + 1, of: chunks.length + 1, complete: true });
  });

  it('answers Anthropic messages, JSON and SSE, with input and output tokens', async () => {
    const json = await call(ANTHROPIC, '/v1/messages', anthropicHeaders, { model: 'claude-haiku-4-5', max_tokens: 9, messages: [{ role: 'user', content: [{ type: 'text', text: 'hi there' }] }] });
    expect(JSON.parse(json.body)).toMatchObject({ type: 'message', content: [{ type: 'text', text: 'echo: hi there' }], usage: { input_tokens: 2, output_tokens: 3 } });
    const sse = await call(ANTHROPIC, '/v1/messages', anthropicHeaders, { model: 'claude-x', stream: true, max_tokens: 9, messages: [{ role: 'user', content: 'one' }] });
    const events = sseData(sse.body) as { type: string; message?: { usage: unknown }; usage?: unknown }[];
    expect(events.map((e) => e.type)).toEqual([
      'message_start', 'content_block_start', 'ping', 'content_block_delta', 'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop',
    ]);
    expect(events[0]!.message!.usage).toEqual({ input_tokens: 1, output_tokens: 1 });
    expect(events[6]!.usage).toEqual({ output_tokens: 2 });
    expect(fake.answers.at(-1)).toMatchObject({ provider: 'anthropic', model: 'claude-x', stream: true, usage: { input: 1, output: 2 } });
  });

  it('refuses calls without credentials or on unknown routes in each provider\'s error shape, reporting no answer', async () => {
    const answers = fake.answers.length;
    const noKey = await call(OPENAI, '/v1/chat/completions', { 'content-type': 'application/json' }, { model: 'm' });
    expect(noKey.status).toBe(401);
    expect(JSON.parse(noKey.body).error.code).toBe('invalid_api_key');
    const noVersion = await call(ANTHROPIC, '/v1/messages', { 'content-type': 'application/json', 'x-api-key': 'k' }, {});
    expect(noVersion.status).toBe(401);
    expect(JSON.parse(noVersion.body).error.type).toBe('authentication_error');
    const route = await call(ANTHROPIC, '/v1/other', anthropicHeaders, {});
    expect(route.status).toBe(404);
    const bad = await httpsCall({ port: fake.httpsPort, servername: OPENAI, ca: rootPem, method: 'POST', path: '/v1/chat/completions', headers: openAiHeaders, body: '{nope' });
    expect(bad.status).toBe(400);
    expect(fake.answers.length).toBe(answers);
  });

  describe('Bedrock Converse and ConverseStream, as the AWS SDK reads them', () => {
    // The SDK's own client against the fake: its endpoint resolution (the regional host), SigV4 signing and
    // deserialisers (JSON, AWS event stream). Its HTTP/1.1 handler, because the fake speaks only HTTP/1.1; the
    // name resolves to the fake's loopback port, TLS is verified for the real name against the test root.
    let client: BedrockRuntimeClient;
    beforeAll(() => {
      const toFake = (_h: string, o: { all?: boolean }, cb: (...a: unknown[]) => void): void =>
        o.all ? cb(null, [{ address: '127.0.0.1', family: 4 }]) : cb(null, '127.0.0.1', 4);
      client = new BedrockRuntimeClient({
        region: 'eu-central-1',
        endpoint: `https://${BEDROCK}:${fake.httpsPort}`,
        credentials: { accessKeyId: 'AKIAFAKEUNITTEST0000', secretAccessKey: 'secret-unit' },
        maxAttempts: 1,
        requestHandler: new NodeHttpHandler({ httpsAgent: new HttpsAgent({ ca: rootPem, lookup: toFake as never }) }),
      });
    });
    afterAll(() => client?.destroy());

    const messages = (text: string) => [{ role: 'user' as const, content: [{ text }] }];

    it('Converse: JSON with output.message, stopReason, usage and metrics; the SigV4 header is recorded, not verified', async () => {
      const mark = fake.records.length;
      const r = await client.send(new ConverseCommand({ modelId: 'eu.anthropic.claude-3-5-haiku-20241022-v1:0', messages: messages('guten tag bedrock') }));
      expect(r.output?.message).toEqual({ role: 'assistant', content: [{ text: 'echo: guten tag bedrock' }] });
      expect(r.stopReason).toBe('end_turn');
      // 3 prompt words; "echo: guten tag bedrock" goes out as 4 pieces.
      expect(r.usage).toEqual({ inputTokens: 3, outputTokens: 4, totalTokens: 7 });
      expect(r.metrics?.latencyMs).toBeGreaterThanOrEqual(0);
      const since = fake.records.slice(mark);
      const req = since.find((x): x is RequestRecord => x.type === 'request')!;
      // The SDK percent-encodes the model ID's colon in the path; the fake reports the decoded ID.
      expect(req).toMatchObject({ method: 'POST', path: '/model/eu.anthropic.claude-3-5-haiku-20241022-v1%3A0/converse', host: BEDROCK, sni: BEDROCK });
      expect(req.headers.authorization).toMatch(/^AWS4-HMAC-SHA256 Credential=AKIAFAKEUNITTEST0000\/\d{8}\/eu-central-1\/bedrock\/aws4_request, /);
      const answer = since.find((x): x is AnswerRecord => x.type === 'answer');
      expect(answer).toMatchObject({ id: req.id, provider: 'bedrock', model: 'eu.anthropic.claude-3-5-haiku-20241022-v1:0', stream: false, usage: { input: 3, output: 4 }, usageSent: true });
    });

    it('ConverseStream: event-stream frames messageStart, contentBlockDelta…, contentBlockStop, messageStop, metadata', async () => {
      const mark = fake.records.length;
      const r = await client.send(new ConverseStreamCommand({ modelId: 'amazon.nova-lite-v1:0', messages: messages('one two') }));
      const events: ConverseStreamOutput[] = [];
      for await (const e of r.stream!) events.push(e);
      expect(events.map((e) => Object.keys(e)[0])).toEqual([
        'messageStart', 'contentBlockDelta', 'contentBlockDelta', 'contentBlockDelta', 'contentBlockStop', 'messageStop', 'metadata',
      ]);
      expect(events.map((e) => e.contentBlockDelta?.delta?.text ?? '').join('')).toBe('echo: one two');
      expect(events[5]!.messageStop?.stopReason).toBe('end_turn');
      expect(events[6]!.metadata?.usage).toEqual({ inputTokens: 2, outputTokens: 3, totalTokens: 5 });
      const since = fake.records.slice(mark);
      const req = since.find((x): x is RequestRecord => x.type === 'request')!;
      expect(since.find((x) => x.type === 'answer')).toMatchObject({ id: req.id, provider: 'bedrock', stream: true, usage: { input: 2, output: 3 } });
      expect(since.find((x) => x.type === 'stream-end')).toMatchObject({ id: req.id, events: 7, of: 7, complete: true });
    });

    it('ConverseStream frames carry Bedrock\'s headers and content type, as the proxy\'s decoder reads them', async () => {
      const r = await httpsCallBytes(`/model/${encodeURIComponent('amazon.nova-lite-v1:0')}/converse-stream`, { messages: messages('x') });
      expect(r.status).toBe(200);
      expect(r.contentType).toBe('application/vnd.amazon.eventstream');
      const got: EventStreamMessage[] = [];
      const decoder = new EventStreamDecoder((m) => got.push(m));
      decoder.push(r.body);
      expect(decoder.failed).toBe(false);
      expect(got.map((m) => m.headers)).toEqual(
        ['messageStart', 'contentBlockDelta', 'contentBlockDelta', 'contentBlockStop', 'messageStop', 'metadata'].map((t) => ({
          ':event-type': t, ':content-type': 'application/json', ':message-type': 'event',
        })),
      );
      const metadata = JSON.parse(Buffer.from(got.at(-1)!.body).toString('utf8'));
      expect(metadata).toMatchObject({ usage: { inputTokens: 1, outputTokens: 2, totalTokens: 3 }, metrics: { latencyMs: expect.any(Number) } });
    });

    it('refuses an unsigned call and an unknown operation in Bedrock\'s error shape, reporting no answer', async () => {
      const answers = fake.answers.length;
      const unsigned = await call(BEDROCK, '/model/amazon.nova-lite-v1:0/converse', { 'content-type': 'application/json' }, { messages: messages('x') });
      expect(unsigned.status).toBe(403);
      expect(unsigned.headers['x-amzn-errortype']).toBe('MissingAuthenticationTokenException');
      expect(JSON.parse(unsigned.body).message).toMatch(/Missing Authentication Token/);
      const other = await call(BEDROCK, '/model/amazon.nova-lite-v1:0/invoke', { 'content-type': 'application/json', authorization: 'Bearer k' }, {});
      expect(other.status).toBe(404);
      expect(other.headers['x-amzn-errortype']).toBe('UnknownOperationException');
      expect(fake.answers.length).toBe(answers);
    });

    /** A raw HTTPS POST returning the body's bytes (httpsCall decodes text; event streams are binary). */
    function httpsCallBytes(path: string, body: unknown): Promise<{ status: number; contentType: string; body: Buffer }> {
      return new Promise((resolve, reject) => {
        const text = JSON.stringify(body);
        const req = httpsRequest(
          { host: '127.0.0.1', port: fake.httpsPort, servername: BEDROCK, ca: rootPem, method: 'POST', path, agent: false,
            headers: { host: BEDROCK, 'content-type': 'application/json', authorization: 'Bearer bedrock-api-key', 'content-length': Buffer.byteLength(text) } },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (d: Buffer) => chunks.push(d));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, contentType: String(res.headers['content-type']), body: Buffer.concat(chunks) }));
          },
        );
        req.on('error', reject);
        req.end(text);
      });
    }
  });

  it('plays a plain site over HTTPS and HTTP; an unknown name gets the default host\'s certificate', async () => {
    const site = await httpsCall({ port: fake.httpsPort, servername: PLAIN, ca: rootPem, method: 'GET', path: '/page' });
    expect(site.body).toBe(`fake ${PLAIN}: GET /page\n`);
    const before = fake.records.length;
    await expect(httpsCall({ port: fake.httpsPort, servername: 'unknown.test', ca: rootPem, method: 'GET', path: '/' })).rejects.toThrow(/altnames/i);
    // The client hangs up on the certificate; the server records the failed handshake.
    for (let i = 0; i < 100 && !fake.records.slice(before).some((x) => x.type === 'tls-error'); i++) await new Promise((r) => setTimeout(r, 10));
    expect(fake.records.slice(before).filter((x) => x.type === 'tls-error')).toHaveLength(1);
    const mark = fake.records.length;
    const text = await new Promise<string>((resolve, reject) => {
      httpRequest({ host: '127.0.0.1', port: fake.httpPort, path: '/plain', headers: { host: PLAIN }, agent: false }, (res) => {
        let t = '';
        res.setEncoding('utf8').on('data', (d: string) => (t += d)).on('end', () => resolve(t));
      }).on('error', reject).end();
    });
    expect(text).toBe(`fake ${PLAIN}: GET /plain\n`);
    expect(fake.records.slice(mark).map((x) => [x.type, 'transport' in x ? x.transport : undefined])).toEqual([['connection', 'http'], ['request', 'http']]);
  });
});

describe('fake provider CONFIG.json', () => {
  const good = { httpsPort: 443, httpPort: 80, certs: { [PLAIN]: { cert: 'c', key: 'k' } }, defaultHost: PLAIN, openaiHosts: [OPENAI], anthropicHosts: [] };

  it('accepts the shape the e2e suite writes', () => {
    expect(checkFakeProviderConfig({ ...good, recordFile: '/tmp/r.jsonl' })).toEqual({ ...good, recordFile: '/tmp/r.jsonl' });
    const bedrockHosts = [BEDROCK, 'bedrock-runtime.us-east-1.amazonaws.com'];
    expect(checkFakeProviderConfig({ ...good, bedrockHosts })).toEqual({ ...good, bedrockHosts });
  });

  it.each<[string, Record<string, unknown>, string]>([
    ['a bad port', { httpsPort: 70000 }, 'httpsPort: expected a port number 0-65535, got 70000'],
    ['a port as text', { httpPort: '80' }, 'httpPort: expected a port number 0-65535, got "80"'],
    ['a default host without a certificate', { defaultHost: OPENAI }, `defaultHost: must name one of the hosts in certs (${PLAIN}), got "${OPENAI}"`],
    ['a certificate without its key', { certs: { [PLAIN]: { cert: 'c' } } }, `certs.${PLAIN}: expected { "cert": "<pem file>", "key": "<pem file>" }`],
    ['hosts that are not a list', { openaiHosts: OPENAI }, `openaiHosts: expected a list of host names, got "${OPENAI}"`],
    ['an empty record file name', { recordFile: '' }, 'recordFile: expected a non-empty string, got ""'],
    ['Bedrock hosts that are not a list', { bedrockHosts: 'bedrock-runtime.eu-central-1.amazonaws.com' }, 'bedrockHosts: expected a list of host names, got "bedrock-runtime.eu-central-1.amazonaws.com"'],
  ])('rejects %s, naming the field', (_name, change, message) => {
    expect(() => checkFakeProviderConfig({ ...good, ...change })).toThrow(message);
  });
});

describe('fake-provider-main (the e2e suite\'s process)', () => {
  let dir: string;
  beforeAll(() => {
    ensureDemoBuilt();
    dir = mkdtempSync(join(tmpdir(), 'aig-fake-main-'));
  }, 180_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const freePort = (): Promise<number> =>
    new Promise((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const port = (s.address() as AddressInfo).port;
        s.close(() => resolve(port));
      });
    });

  async function configFile(extra: Record<string, unknown>): Promise<{ file: string; httpsPort: number }> {
    const files: Record<string, { cert: string; key: string }> = {};
    for (const [host, pem] of Object.entries(certs)) {
      files[host] = { cert: join(dir, `${host}.crt`), key: join(dir, `${host}.key`) };
      writeFileSync(files[host].cert, pem.cert);
      writeFileSync(files[host].key, pem.key);
    }
    const httpsPort = await freePort();
    const file = join(dir, `config-${httpsPort}.json`);
    writeFileSync(file, JSON.stringify({ httpsPort, httpPort: await freePort(), listenAddress: '127.0.0.1', certs: files, defaultHost: PLAIN, openaiHosts: [OPENAI], anthropicHosts: [ANTHROPIC], ...extra }));
    return { file, httpsPort };
  }

  function start(file: string): { lines: () => string; stderr: () => string; exited: Promise<number | null>; kill: () => void } {
    const child = spawn(process.execPath, [FAKE_PROVIDER_MAIN, file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    return { lines: () => out, stderr: () => err, exited, kill: () => child.kill('SIGTERM') };
  }

  async function until(what: () => string, needle: string): Promise<void> {
    for (let i = 0; i < 200 && !what().includes(needle); i++) await new Promise((r) => setTimeout(r, 25));
    expect(what()).toContain(needle);
  }

  it('appends each record to recordFile as one JSON line before answering, and exits 0 on SIGTERM', async () => {
    const recordFile = join(dir, 'records.jsonl');
    writeFileSync(recordFile, '');
    const { file, httpsPort } = await configFile({ recordFile });
    const p = start(file);
    const read = (): string => readFileSync(recordFile, 'utf8');
    await until(read, '"type":"ready"');
    const r = await httpsCall({ port: httpsPort, servername: OPENAI, ca: rootPem, method: 'POST', path: '/v1/chat/completions', headers: openAiHeaders, body: JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'from main' }] }) });
    expect(JSON.parse(r.body).choices[0].message.content).toBe('echo: from main');
    // The request's line is already there when the answer arrives.
    const records = read().trim().split('\n').map((l) => JSON.parse(l) as FakeRecord);
    expect(records.map((x) => x.type)).toEqual(['ready', 'connection', 'request', 'answer']);
    expect(Object.keys(records[2]!)[0]).toBe('at');
    expect(records[2]).toMatchObject({ sni: OPENAI, path: '/v1/chat/completions', host: OPENAI });
    expect(p.lines()).toBe('');
    p.kill();
    expect(await p.exited).toBe(0);
  });

  it('writes the records to stdout when there is no recordFile', async () => {
    const { file } = await configFile({});
    const p = start(file);
    await until(p.lines, '"type":"ready"');
    p.kill();
    expect(await p.exited).toBe(0);
    expect(JSON.parse(p.lines().trim())).toMatchObject({ type: 'ready' });
  });

  it('fails with one line naming the field for a bad config, and for a missing certificate file', async () => {
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ httpsPort: -1 }));
    const p = start(bad);
    expect(await p.exited).toBe(1);
    expect(p.stderr()).toMatch(/^fake-provider: certs: expected a map/);
    const { file } = await configFile({ certs: { [PLAIN]: { cert: join(dir, 'missing.crt'), key: join(dir, 'missing.key') } } });
    const q = start(file);
    expect(await q.exited).toBe(1);
    expect(q.stderr()).toBe(`fake-provider: certs.${PLAIN}.cert: cannot read ${join(dir, 'missing.crt')}: ENOENT\n`);
  });
});
