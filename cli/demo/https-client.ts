import { request } from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';
import type { TLSSocket } from 'node:tls';

// One HTTPS exchange to a loopback port under another name: TLS is verified for `servername` against `ca` alone
// (no public roots), the way an app whose SSL_CERT_FILE is the pod's bundle verifies it. Used for the webhook
// call (as the API server makes it) and the app's calls (as iptables would steer them to the capture port).

export interface HttpsCall {
  port: number;
  /** The name the client means: SNI, certificate check and Host header. */
  servername: string;
  /** PEM text of every root the client trusts, and nothing else. */
  ca: string;
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: string;
  /** Default 127.0.0.1. */
  address?: string;
  timeoutMs?: number;
}

export interface HttpsAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  /** Common names of the certificate the server presented, and of its issuer. */
  peer: { subject: string; issuer: string };
}

const DEFAULT_TIMEOUT_MS = 15_000;

export function httpsCall(c: HttpsCall): Promise<HttpsAnswer> {
  return new Promise((resolve, reject) => {
    const body = c.body === undefined ? undefined : Buffer.from(c.body);
    const req = request(
      {
        host: c.address ?? '127.0.0.1',
        port: c.port,
        servername: c.servername,
        ca: c.ca,
        method: c.method,
        path: c.path,
        agent: false,
        headers: { host: c.servername, ...(body && { 'content-length': String(body.length) }), ...c.headers },
        timeout: c.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      },
      (res) => {
        const cert = (res.socket as TLSSocket).getPeerCertificate();
        const peer = { subject: String(cert.subject?.CN ?? ''), issuer: String(cert.issuer?.CN ?? '') };
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8'), peer }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer from ${c.servername} within ${c.timeoutMs ?? DEFAULT_TIMEOUT_MS} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}
