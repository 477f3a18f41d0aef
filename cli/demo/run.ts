import { rmSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino, type DestinationStream } from 'pino';
import { CA_BUNDLE_FILE, PROXY_CONTAINER_NAME } from '../../shared/constants.js';
import { UserError, errorMessage } from '../../shared/errors.js';
import { createLogger, type Logger } from '../../shared/log.js';
import { createCA, issueLeaf, loadCA } from '../../shared/pki.js';
import { parsePolicy } from '../../shared/policy/load.js';
import { startProxy, type ProxyHandle } from '../../sidecar/proxy/proxy.js';
import { FilePolicySource, LocalCaCertificateSource } from '../../sidecar/proxy/sources/standalone.js';
import { defaultConfig, type InjectionConfig } from '../../webhook/config.js';
import { admitSamplePod, type AdmissionStep } from './admission.js';
import {
  ANTHROPIC_HOST,
  GEMINI_HOST,
  OPENAI_HOST,
  PLAIN_HOST,
  demoCalls,
  evaluateCall,
  type CallOutcome,
  type DemoCall,
  type Decision,
  type ObservedAnswer,
} from './calls.js';
import { DemoFailure, type DemoStepName } from './failure.js';
import { startFakeProvider, type FakeProviderHandle, type RequestRecord } from './fake-provider.js';
import { httpsCall } from './https-client.js';
import { growth, parseSamples, type Sample } from './metrics-text.js';
import type { InjectedPodSummary } from './pod-summary.js';
import { proxyConfigFromArgs } from './proxy-args.js';
import { DEMO_ANTHROPIC_SECRET, DEMO_MANAGED_ANTHROPIC_KEY, DEMO_POLICY_YAML, SAMPLE_NAMESPACE, SAMPLE_POD_NAME, SAMPLE_SERVICE_ACCOUNT } from './sample.js';

// `aigress demo`: the whole path on loopback with embedded inputs — admission of a sample pod through the real
// webhook server, the proxy started from the injected container's args, calls made as the app, and the proxy's
// own metrics — each step checked against what must happen. No cluster, no root, nothing left behind.

export const DEMO_CA_CN = 'aigress demo CA';
/** The fake provider's root: it stands in for the public roots the real providers chain to. */
export const FAKE_ROOT_CN = 'demo public root (fake provider)';

export interface DemoOptions {
  verbose: boolean;
  keep: boolean;
}

export interface DemoReport {
  ok: boolean;
  /** The first step that went wrong, and why. */
  failedStep?: DemoStepName;
  failure?: string;
  /** From the demo's start to its end (temp dir removed); `sinceProcessStartMs` adds Node's start and module loading. */
  wallMs: number;
  sinceProcessStartMs: number;
  phasesMs: Partial<Record<'setup' | 'admission' | 'proxyReady' | 'calls', number>>;
  tempDir: string;
  kept: boolean;
  admission?: {
    serviceName: string;
    patchOps: number;
    matchesInjector: boolean;
    warnings: string[];
  } & InjectedPodSummary;
  proxy?: {
    args: string[];
    mode: 'standalone';
    capturePort: number;
    adminPort: number;
    injectedCapturePort: number;
    injectedAdminPort: number;
    injectedBundleDir: string;
    bundleDir: string;
    policyFile: string;
    /** The rules of the embedded policy the calls meet. */
    policy: { regions: string[]; unknownRegions: string; allowModels: string[]; denyModels: string[] };
    fakeProviderPort: number;
    resolved: string[];
  };
  calls: CallOutcome[];
  /** The proxy's aigress_requests_total and aigress_tokens_total lines after the calls. */
  metrics: string[];
}

const METRIC_LINES = ['aigress_requests_total', 'aigress_tokens_total'];
const COUNT_WAIT_MS = 3_000;

function logSink(verbose: boolean): { level: string; dest: DestinationStream } {
  // Logs go to stderr, so stdout stays the summary (or the JSON) alone.
  return { level: verbose ? 'info' : 'warn', dest: pino.destination({ dest: 2, sync: true }) };
}

/** The injection config the demo's webhook runs with: standalone proxies pointed at the demo's policy and CA. */
export function demoInjectionConfig(policyFile: string, caDir: string, credentialsDir?: string): InjectionConfig {
  const injection = defaultConfig().injection;
  return {
    ...injection,
    controlPlane: { ...injection.controlPlane, address: '' },
    proxy: { ...injection.proxy, extraArgs: ['--policy', policyFile, '--ca-dir', caDir, ...(credentialsDir ? ['--credentials-dir', credentialsDir] : [])] },
  };
}

function scrape(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path: '/metrics', agent: false, timeout: 5_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => (res.statusCode === 200 ? resolve(text) : reject(new Error(`/metrics answered ${res.statusCode}`))));
    });
    req.on('timeout', () => req.destroy(new Error('/metrics did not answer')));
    req.on('error', reject);
    req.end();
  });
}

/** Polls /metrics until the proxy has counted the call (it counts a request once the response is closed). */
async function afterCounted(adminPort: number, before: readonly Sample[]): Promise<Sample[]> {
  const deadline = Date.now() + COUNT_WAIT_MS;
  for (;;) {
    const after = parseSamples(await scrape(adminPort));
    const counted = growth(before, after, 'aigress_requests_total').length > 0 || growth(before, after, 'aigress_connections_total').some((g) => g.labels.route?.startsWith('passthrough') === true);
    if (counted || Date.now() > deadline) return after;
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function makeCall(call: DemoCall, env: { proxy: ProxyHandle; fake: FakeProviderHandle; bundlePem: string; fakeRootPem: string }): Promise<CallOutcome> {
  const before = parseSamples(await scrape(env.proxy.adminPort));
  const recordMark = env.fake.records.length;
  const answerMark = env.fake.answers.length;
  let answer: ObservedAnswer | undefined;
  let error: string | undefined;
  try {
    const r = await httpsCall({
      port: env.proxy.capturePort,
      servername: call.host,
      ca: call.trust === 'bundle' ? env.bundlePem : env.fakeRootPem,
      method: call.method,
      path: call.path,
      headers: call.headers,
      ...(call.body !== undefined && { body: call.body }),
    });
    const denied = r.headers['x-aigress-denied'];
    const retryAfter = r.headers['retry-after'];
    answer = { status: r.status, body: r.body, peer: r.peer, ...(typeof denied === 'string' && { deniedBy: denied }), ...(typeof retryAfter === 'string' && { retryAfter }) };
  } catch (err) {
    error = errorMessage(err);
  }
  const after = await afterCounted(env.proxy.adminPort, before);
  const requests = growth(before, after, 'aigress_requests_total');
  const passed = growth(before, after, 'aigress_connections_total').some((g) => g.labels.route?.startsWith('passthrough') === true);
  const decision: Decision = (requests[0]?.labels.decision as Decision | undefined) ?? (passed ? 'passthrough' : 'none');
  const tokens = growth(before, after, 'aigress_tokens_total').filter((g) => g.labels.provider === call.provider && g.labels.model === call.model);
  const metered = {
    input: tokens.filter((g) => g.labels.type === 'input').reduce((n, g) => n + g.by, 0),
    output: tokens.filter((g) => g.labels.type === 'output').reduce((n, g) => n + g.by, 0),
  };
  const upstream = env.fake.records.slice(recordMark).filter((r): r is RequestRecord => r.type === 'request');
  const reported = env.fake.answers[answerMark];
  return evaluateCall(
    call,
    { ...(answer && { answer }), ...(error !== undefined && { error }), upstream, ...(reported && { reported }), metered, decision },
    { bundle: DEMO_CA_CN, publicRoots: FAKE_ROOT_CN },
  );
}

export async function runDemo(opts: DemoOptions): Promise<DemoReport> {
  const t0 = performance.now();
  const mark = (): number => Math.round(performance.now() - t0);
  const sink = logSink(opts.verbose);
  const logger = (name: string): Logger => createLogger(name, { level: sink.level }, sink.dest);
  const dir = await mkdtemp(join(tmpdir(), 'aigress-demo-')).catch((err: NodeJS.ErrnoException) => {
    throw new UserError(`demo failed at step setup: cannot create a temporary directory in ${tmpdir()}: ${err.code ?? err.message}`);
  });
  // Interrupted (Ctrl-C), the demo still leaves nothing behind unless --keep: the directory holds a CA key.
  const interrupted = (signal: NodeJS.Signals): void => {
    if (!opts.keep) rmSync(dir, { recursive: true, force: true });
    process.stderr.write(`aigress: demo interrupted (${signal})\n`);
    process.exit(130);
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  const report: DemoReport = { ok: false, wallMs: 0, sinceProcessStartMs: 0, phasesMs: {}, tempDir: dir, kept: opts.keep, calls: [], metrics: [] };
  let step: DemoStepName = 'setup';
  let fake: FakeProviderHandle | undefined;
  let proxy: ProxyHandle | undefined;
  try {
    // The demo CA (the control plane's, here a directory as `aigress proxy --ca-dir` reads it) and the policy file.
    const caDir = join(dir, 'ca');
    const policyFile = join(dir, 'policy.yaml');
    const bundleDir = join(dir, 'bundle');
    await mkdir(caDir, { mode: 0o700 });
    const caPair = await createCA(DEMO_CA_CN, 1);
    await writeFile(join(caDir, 'ca.crt'), caPair.certPem);
    await writeFile(join(caDir, 'ca.key'), caPair.keyPem, { mode: 0o600 });
    const policy = parsePolicy(DEMO_POLICY_YAML, 'the embedded demo policy').spec; // a broken embedded policy fails here, before anything runs
    await writeFile(policyFile, DEMO_POLICY_YAML);
    // The managed Anthropic key, laid out as a mounted Secret (--credentials-dir DIR/name/key): the app never has it.
    const credentialsDir = join(dir, 'credentials');
    await mkdir(join(credentialsDir, DEMO_ANTHROPIC_SECRET.name), { recursive: true, mode: 0o700 });
    await writeFile(join(credentialsDir, DEMO_ANTHROPIC_SECRET.name, DEMO_ANTHROPIC_SECRET.key), `${DEMO_MANAGED_ANTHROPIC_KEY}\n`, { mode: 0o600 });
    const ca = await loadCA(caPair.certPem, caPair.keyPem);
    report.phasesMs.setup = mark();

    step = 'admission';
    const injection = demoInjectionConfig(policyFile, caDir, credentialsDir);
    const admission: AdmissionStep = await admitSamplePod({ ca, caPem: caPair.certPem, injection, logger: logger('webhook') });
    report.admission = {
      serviceName: admission.serviceName,
      patchOps: admission.patch.length,
      matchesInjector: admission.matchesInjector,
      warnings: admission.warnings,
      ...admission.summary,
    };
    if (!admission.matchesInjector) throw new DemoFailure('admission', 'the patched pod differs from the pod the injection code computed');
    report.phasesMs.admission = mark() - report.phasesMs.setup;

    step = 'fake-provider';
    const fakeRoot = await createCA(FAKE_ROOT_CN, 1);
    const fakeCa = await loadCA(fakeRoot.certPem, fakeRoot.keyPem);
    await writeFile(join(dir, 'fake-provider-root.pem'), fakeRoot.certPem);
    const certs: Record<string, { cert: string; key: string }> = {};
    for (const host of [OPENAI_HOST, ANTHROPIC_HOST, PLAIN_HOST]) {
      const leaf = await issueLeaf(fakeCa, { dnsNames: [host] });
      certs[host] = { cert: leaf.certPem, key: leaf.keyPem };
    }
    fake = await startFakeProvider({
      httpsPort: 0,
      httpPort: 0,
      listenAddress: '127.0.0.1',
      certs,
      defaultHost: PLAIN_HOST,
      openaiHosts: [OPENAI_HOST],
      anthropicHosts: [ANTHROPIC_HOST],
    });

    step = 'proxy';
    const spec = admission.pod.spec.initContainers?.find((c) => c.name === PROXY_CONTAINER_NAME) ?? admission.pod.spec.containers.find((c) => c.name === PROXY_CONTAINER_NAME);
    if (!spec || !Array.isArray(spec.args)) throw new DemoFailure('proxy', `the injected pod has no ${PROXY_CONTAINER_NAME} container with args`);
    const args = spec.args.map(String);
    const config = proxyConfigFromArgs(args);
    if (config.mode.kind !== 'standalone') throw new DemoFailure('proxy', `the injected proxy runs in ${config.mode.kind} mode; the demo needs standalone`);
    // Every upstream name the calls use leads to the fake provider: nothing leaves loopback, TLS is still
    // verified for the real name (against the fake's root, standing in for the public roots).
    const target = { host: '127.0.0.1', port: fake.httpsPort };
    const resolve = Object.fromEntries([OPENAI_HOST, ANTHROPIC_HOST, GEMINI_HOST, PLAIN_HOST].map((h) => [h, target]));
    const proxyLog = logger('proxy');
    proxy = await startProxy({
      certificates: new LocalCaCertificateSource(config.mode.caDir),
      policy: new FilePolicySource(config.mode.policyFile, proxyLog),
      bundleDir,
      capturePort: 0,
      adminPort: 0,
      listenAddresses: ['127.0.0.1'],
      adminAddress: '127.0.0.1',
      maxBodyBytes: config.maxBodyBytes,
      drainTimeoutMs: config.drainTimeoutMs,
      upstreamTimeoutMs: config.upstreamTimeoutMs,
      logger: proxyLog,
      identity: { namespace: SAMPLE_NAMESPACE, pod: SAMPLE_POD_NAME, serviceAccount: SAMPLE_SERVICE_ACCOUNT },
      resolve,
      upstreamCa: fakeRoot.certPem,
      ...(config.mode.credentialsDir !== undefined && { credentials: { kind: 'dir' as const, dir: config.mode.credentialsDir } }),
    });
    await proxy.ready;
    report.proxy = {
      args,
      mode: 'standalone',
      capturePort: proxy.capturePort,
      adminPort: proxy.adminPort,
      injectedCapturePort: config.capturePort,
      injectedAdminPort: config.adminPort,
      injectedBundleDir: config.bundleDir,
      bundleDir,
      policyFile: config.mode.policyFile,
      policy: { regions: policy.regions.allow, unknownRegions: policy.regions.unknown, allowModels: policy.models.allow, denyModels: policy.models.deny },
      fakeProviderPort: fake.httpsPort,
      resolved: Object.keys(resolve),
    };
    const bundlePem = await readFile(join(bundleDir, CA_BUNDLE_FILE), 'utf8');
    report.phasesMs.proxyReady = mark() - report.phasesMs.setup - report.phasesMs.admission;

    step = 'calls';
    const before = mark();
    for (const call of demoCalls()) {
      report.calls.push(await makeCall(call, { proxy, fake, bundlePem, fakeRootPem: fakeRoot.certPem }));
    }
    report.phasesMs.calls = mark() - before;

    step = 'metrics';
    const text = await scrape(proxy.adminPort);
    report.metrics = text.split('\n').filter((l) => METRIC_LINES.some((m) => l.startsWith(`${m}{`) || l.startsWith(`${m} `)));

    const bad = report.calls.find((c) => !c.ok);
    if (bad) {
      report.failedStep = 'calls';
      report.failure = `${bad.id} (${bad.title}): ${bad.failures.join('; ')}`;
    } else report.ok = true;
  } catch (err) {
    report.failedStep = err instanceof DemoFailure ? err.step : step;
    report.failure = errorMessage(err);
  } finally {
    process.off('SIGINT', interrupted);
    process.off('SIGTERM', interrupted);
    await proxy?.close().catch(() => undefined);
    await fake?.close().catch(() => undefined);
    if (!opts.keep) await rm(dir, { recursive: true, force: true });
    report.wallMs = mark();
    report.sinceProcessStartMs = Math.round(process.uptime() * 1000);
  }
  return report;
}
