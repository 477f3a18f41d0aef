import { Agent, request } from 'node:https';
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { createCA, issueLeaf, loadCA, type PemPair } from '../../../shared/pki.js';
import { defaultConfig, type InjectionConfig } from '../../../webhook/config.js';
import { createWebhookServer, type ControlPlaneServer, type TlsSource } from '../../../webhook/server.js';

// Plays the API server's side of the wire: HTTPS verified against the CA that issued the webhook's serving
// certificate (what a caBundle holds), AdmissionReview JSON in and out.

export interface TestPki {
  caPem: string;
  serving: PemPair;
}

export async function testPki(dnsNames = ['localhost']): Promise<TestPki> {
  const ca = await createCA('aigress test webhook CA', 1);
  const serving = await issueLeaf(await loadCA(ca.certPem, ca.keyPem), { dnsNames });
  return { caPem: ca.certPem, serving };
}

/** A logger whose JSON lines are kept in memory, so tests can read what was logged. */
export function memoryLogger(): { logger: Logger; lines: () => Array<Record<string, unknown>> } {
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString('utf8'));
      cb();
    },
  });
  const logger = pino({ level: 'debug', base: { component: 'webhook' } }, sink);
  const lines = (): Array<Record<string, unknown>> =>
    chunks
      .join('')
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { logger, lines };
}

export interface Running {
  server: ControlPlaneServer;
  port: number;
  caPem: string;
  logLines: () => Array<Record<string, unknown>>;
  close: () => Promise<void>;
}

export async function startWebhook(
  opts: { injection?: InjectionConfig; pki?: TestPki; tls?: TlsSource } = {},
): Promise<Running> {
  const pki = opts.pki ?? (await testPki());
  const { logger, lines } = memoryLogger();
  const server = await createWebhookServer({
    tls: opts.tls ?? { certPem: pki.serving.certPem, keyPem: pki.serving.keyPem },
    logger,
    injection: opts.injection ?? defaultConfig().injection,
  });
  const port = await server.listen(0, '127.0.0.1');
  return { server, port, caPem: pki.caPem, logLines: lines, close: () => server.close() };
}

export interface HttpAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: () => unknown;
}

export function call(
  target: { port: number; caPem: string; agent?: Agent },
  method: string,
  path: string,
  body?: string | Buffer,
  headers: Record<string, string> = {},
): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        servername: 'localhost',
        port: target.port,
        method,
        path,
        ca: target.caPem,
        agent: target.agent,
        headers: { 'content-type': 'application/json', ...headers },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: () => JSON.parse(text) as unknown });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

export { review } from '../../support/admission-review.js';

export interface AdmissionResponseBody {
  apiVersion: string;
  kind: string;
  response: {
    uid: string;
    allowed: boolean;
    patchType?: string;
    patch?: string;
    warnings?: string[];
    status?: { code: number; message: string };
  };
}

export function decodePatch(r: AdmissionResponseBody): Array<{ op: string; path: string; value?: unknown }> {
  return r.response.patch === undefined ? [] : (JSON.parse(Buffer.from(r.response.patch, 'base64').toString('utf8')) as never);
}
