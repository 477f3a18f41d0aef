import { request as httpsRequest, createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { request as httpRequest, type IncomingMessage, type IncomingHttpHeaders, type RequestListener } from 'node:http';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, type PeerCertificate } from 'node:tls';
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { createCA, issueLeaf, loadCA } from '../../../shared/pki.js';
import { pipelineOf } from '../../../sidecar/pipeline/index.js';
import type { Pipeline } from '../../../sidecar/pipeline/types.js';
import { startProxy, type ProxyHandle, type ProxyOptions } from '../../../sidecar/proxy/proxy.js';
import { FilePolicySource, LocalCaCertificateSource } from '../../../sidecar/proxy/sources/standalone.js';

// Loopback harness for the proxy: a fake "public" root with leaf certificates for the fake providers, an
// aigress CA in a --ca-dir, a policy file, and clients that dial the capture port the way a redirected app
// connection arrives (TLS with the real host name as SNI, or plain HTTP with its Host).

export interface TestPki {
  /** The stand-in public root the fake upstreams chain to. */
  upstreamRootPem: string;
  leaf(host: string): Promise<{ cert: string; key: string }>;
  /** --ca-dir of the aigress CA, and its PEM (what apps trust through bundle.pem). */
  caDir: string;
  caPem: string;
  dir: string;
}

export async function createTestPki(): Promise<TestPki> {
  const dir = mkdtempSync(join(tmpdir(), 'aigress-proxy-test-'));
  const root = await createCA('aigress test upstream root', 2);
  const rootCa = await loadCA(root.certPem, root.keyPem);
  const aigress = await createCA('aigress test CA', 2);
  const caDir = join(dir, 'ca');
  mkdirSync(caDir);
  writeFileSync(join(caDir, 'ca.crt'), aigress.certPem);
  writeFileSync(join(caDir, 'ca.key'), aigress.keyPem, { mode: 0o600 });
  return {
    upstreamRootPem: root.certPem,
    caDir,
    caPem: aigress.certPem,
    dir,
    async leaf(host) {
      const l = await issueLeaf(rootCa, { dnsNames: [host] });
      return { cert: l.certPem, key: l.keyPem };
    },
  };
}

export function policyYaml(spec: { providers?: string[]; unmatchedEgress?: 'passthrough' | 'deny' } = {}): string {
  return [
    'apiVersion: aigress.io/v1alpha1',
    'kind: EgressPolicy',
    'metadata: { name: test }',
    'spec:',
    `  providers: [${(spec.providers ?? ['openai', 'anthropic']).join(', ')}]`,
    `  unmatchedEgress: ${spec.unmatchedEgress ?? 'passthrough'}`,
    '',
  ].join('\n');
}

/** A fake provider: HTTPS on an ephemeral loopback port with a leaf for `host` from the test root. */
export async function fakeUpstream(pki: TestPki, host: string, handler: RequestListener): Promise<{ server: HttpsServer; port: number; close(): Promise<void> }> {
  const leaf = await pki.leaf(host);
  const server = createHttpsServer({ cert: leaf.cert, key: leaf.key, keepAliveTimeout: 60_000 }, handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    server,
    port,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** A pino logger whose JSON lines land in `lines`. */
export function captureLogger(): { logger: Logger; lines: Record<string, unknown>[]; raw: string[] } {
  const lines: Record<string, unknown>[] = [];
  const raw: string[] = [];
  const dest = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) {
        if (!l) continue;
        raw.push(l);
        lines.push(JSON.parse(l) as Record<string, unknown>);
      }
      cb();
    },
  });
  return { logger: pino({ level: 'debug' }, dest), lines, raw };
}

export interface TestProxy {
  handle: ProxyHandle;
  bundleDir: string;
  policyFile: string;
}

/** No processors: these tests are about the proxy, not the policy steps (which have their own tests). */
export const emptyPipeline = (): Pipeline => pipelineOf([]);

export async function startTestProxy(
  pki: TestPki,
  opts: { policyText?: string } & Partial<ProxyOptions> = {},
): Promise<TestProxy> {
  const base = mkdtempSync(join(pki.dir, 'proxy-'));
  const policyFile = join(base, 'policy.yaml');
  writeFileSync(policyFile, opts.policyText ?? policyYaml());
  const bundleDir = join(base, 'bundle');
  const { policyText: _p, ...rest } = opts;
  const handle = await startProxy({
    buildPipeline: emptyPipeline,
    certificates: new LocalCaCertificateSource(pki.caDir),
    policy: new FilePolicySource(policyFile, undefined, 100),
    bundleDir,
    capturePort: 0,
    adminPort: 0,
    listenAddresses: ['127.0.0.1'],
    adminAddress: '127.0.0.1',
    upstreamCa: pki.upstreamRootPem,
    logger: pino({ level: 'silent' }),
    ...rest,
  });
  return { handle, bundleDir, policyFile };
}

/** A request to the proxy's admin port (probes, /metrics, /shutdown). */
export function adminRequest(p: TestProxy, path: string, method = 'GET'): Promise<{ status: number; body: string }> {
  return new Promise((res, rej) => {
    const req = httpRequest({ host: '127.0.0.1', port: p.handle.adminPort, path, method }, (r) => {
      let b = '';
      r.on('data', (c: Buffer) => (b += c.toString()));
      r.on('end', () => res({ status: r.statusCode!, body: b }));
    });
    req.on('error', rej);
    req.end();
  });
}

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

function collect(res: IncomingMessage): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    res.on('error', reject);
  });
}

export interface CallOptions {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** TLS server name; defaults to `host`. */
  servername?: string;
}

/** An HTTPS request through the capture port as a redirected app would send it, trusting the aigress CA. */
export function callTls(port: number, host: string, caPem: string, o: CallOptions = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port,
        servername: o.servername ?? host,
        ca: caPem,
        method: o.method ?? 'POST',
        path: o.path ?? '/v1/chat/completions',
        headers: { host, ...o.headers },
        agent: false,
      },
      (res) => collect(res).then(resolve, reject),
    );
    req.on('error', reject);
    req.end(o.body);
  });
}

/** A plain HTTP request through the capture port. */
export function callPlain(port: number, host: string, o: CallOptions = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: '127.0.0.1', port, method: o.method ?? 'POST', path: o.path ?? '/v1/chat/completions', headers: { host, ...o.headers }, agent: false },
      (res) => collect(res).then(resolve, reject),
    );
    req.on('error', reject);
    req.end(o.body);
  });
}

/** The certificate the capture port presents for `servername` (without verifying it). */
export function peerCertificate(port: number, servername: string): Promise<PeerCertificate> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false }, () => {
      const cert = s.getPeerCertificate();
      s.destroy();
      resolve(cert);
    });
    s.on('error', reject);
  });
}

export async function metricsText(handle: ProxyHandle): Promise<string> {
  return handle.registry.metrics();
}

/** Value of one series in Prometheus text, or 0 when absent. */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[3]);
  }
  return 0;
}

/** Polls `probe` until it returns a truthy value or `ms` pass; returns the last value. */
export async function eventually<T>(probe: () => Promise<T>, ms = 3_000): Promise<T> {
  const deadline = Date.now() + ms;
  let v = await probe();
  while (!v && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 25));
    v = await probe();
  }
  return v;
}
