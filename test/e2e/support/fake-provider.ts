import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FakeProviderConfigFile } from '../../../cli/demo/fake-provider-config.js';
import type { AnswerRecord, FakeRecord, RequestRecord } from '../../../cli/demo/fake-provider.js';
import { createCA, issueLeaf, loadCA } from '../../../shared/pki.js';
import { netnsExec } from './netns.js';
import { REPO_ROOT } from './paths.js';
import { Background } from './process.js';

// The fake provider, from the test's side: its test root and certificates, the process started inside the
// outside namespace, and the JSON lines it reports (connections, requests, streams) parsed as they arrive.
// The server is the product's own (cli/demo/fake-provider.ts, which `aigress demo` runs in-process), started
// here from the build as its own process: run `npx tsc -p tsconfig.build.json` first.

export type { AnswerRecord, ConnectionRecord, FakeRecord, RequestRecord, StreamRecord } from '../../../cli/demo/fake-provider.js';

const SERVER = join(REPO_ROOT, 'dist/cli/demo/fake-provider-main.js');

export const OPENAI_HOST = 'api.openai.com';
export const ANTHROPIC_HOST = 'api.anthropic.com';
/** OpenAI's European data-residency endpoint (region eu; api.openai.com is us). */
export const OPENAI_EU_HOST = 'eu.api.openai.com';
export const BEDROCK_EU_HOST = 'bedrock-runtime.eu-central-1.amazonaws.com';
export const BEDROCK_US_HOST = 'bedrock-runtime.us-east-1.amazonaws.com';
/** A host no provider adapter claims: its traffic must pass the proxy untouched. */
export const PLAIN_HOST = 'example.org';
export const TEST_ROOT_CN = 'aigress e2e fake provider root';

export interface TestPki {
  /** PEM file of the test root: it stands in for the public roots the real providers chain to. */
  rootFile: string;
  rootPem: string;
  certs: Record<string, { cert: string; key: string }>;
}

/** A test root and one leaf per host, written under `dir` (world-readable: the pod's UIDs read the root). */
export async function createTestPki(dir: string, hosts: readonly string[]): Promise<TestPki> {
  const root = await createCA(TEST_ROOT_CN, 2);
  const ca = await loadCA(root.certPem, root.keyPem);
  const rootFile = join(dir, 'test-root.pem');
  writeFileSync(rootFile, root.certPem, { mode: 0o644 });
  const certs: TestPki['certs'] = {};
  for (const host of hosts) {
    const leaf = await issueLeaf(ca, { dnsNames: [host], validityMs: 86_400_000 });
    const cert = join(dir, `${host}.crt`);
    const key = join(dir, `${host}.key`);
    writeFileSync(cert, leaf.certPem, { mode: 0o644 });
    writeFileSync(key, leaf.keyPem, { mode: 0o600 });
    certs[host] = { cert, key };
  }
  chmodSync(dir, 0o755);
  return { rootFile, rootPem: root.certPem, certs };
}

export class FakeProvider {
  readonly records: FakeRecord[] = [];
  private consumed = 0;

  constructor(
    private readonly proc: Background,
    private readonly recordFile: string,
  ) {}

  /** Parses the lines appended since the last call (the server writes each one before it answers). */
  private sync(): void {
    const text = readFileSync(this.recordFile, 'utf8');
    const end = text.lastIndexOf('\n') + 1; // a partial line waits for its end
    for (const line of text.slice(this.consumed, end).split('\n')) {
      if (line) this.records.push(JSON.parse(line) as FakeRecord);
    }
    this.consumed = end;
  }

  /** A position in the record list; pass it to `since` to see only what came after. */
  mark(): number {
    this.sync();
    return this.records.length;
  }

  since(mark: number): FakeRecord[] {
    this.sync();
    return this.records.slice(mark);
  }

  requestsSince(mark: number): RequestRecord[] {
    return this.since(mark).filter((r): r is RequestRecord => r.type === 'request');
  }

  /** What the fake answered (the usage it reported) since `mark`. */
  answersSince(mark: number): AnswerRecord[] {
    return this.since(mark).filter((r): r is AnswerRecord => r.type === 'answer');
  }

  async waitFor<T extends FakeRecord>(what: string, mark: number, test: (r: FakeRecord) => r is T, timeoutMs = 15_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.since(mark).find(test);
      if (found) return found;
      if (!this.proc.running) throw new Error(`fake provider exited while waiting for ${what}: ${this.proc.stderr.trim()}`);
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for the fake provider: ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  get running(): boolean {
    return this.proc.running;
  }

  async stop(): Promise<void> {
    await this.proc.stop();
  }
}

export interface FakeProviderOptions {
  outsideNs: string;
  pki: TestPki;
  /** Where its config file goes. */
  dir: string;
  /** Hosts it plays; defaults: OpenAI's and Anthropic's main hosts, no Bedrock. Each needs a certificate in `pki`. */
  openaiHosts?: string[];
  anthropicHosts?: string[];
  bedrockHosts?: string[];
}

/** Starts the fake provider in the outside namespace on 443 and 80; resolves once both listen. */
export async function startFakeProvider(opts: FakeProviderOptions): Promise<FakeProvider> {
  const configFile = join(opts.dir, 'fake-provider.json');
  const recordFile = join(opts.dir, 'fake-provider-records.jsonl');
  writeFileSync(recordFile, '');
  const config: FakeProviderConfigFile = {
    httpsPort: 443,
    httpPort: 80,
    certs: opts.pki.certs,
    defaultHost: PLAIN_HOST,
    openaiHosts: opts.openaiHosts ?? [OPENAI_HOST],
    anthropicHosts: opts.anthropicHosts ?? [ANTHROPIC_HOST],
    ...(opts.bedrockHosts && { bedrockHosts: opts.bedrockHosts }),
    recordFile,
  };
  writeFileSync(configFile, JSON.stringify(config));
  if (!existsSync(SERVER)) throw new Error(`${SERVER} is missing: build first (npx tsc -p tsconfig.build.json)`);
  const [cmd, args] = netnsExec(opts.outsideNs, [process.execPath, SERVER, configFile]);
  const proc = new Background(cmd, args);
  const fake = new FakeProvider(proc, recordFile);
  await fake.waitFor('to listen on 443 and 80', 0, (r): r is FakeRecord => r.type === 'ready');
  return fake;
}

