import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';

// The admin port (14020): kubelet probes, Prometheus, and POST /shutdown for Jobs whose pods have no native
// sidecars (the app's last step tells the proxy to drain and exit so the pod can complete).

export interface AdminDeps {
  ready(): boolean;
  draining(): boolean;
  registry: Registry;
  /** Starts the drain; the response is sent first. */
  shutdown(): void;
  /** Called after a 200 on /readyz went out (the proxy warms up then, not before the probe sees it). */
  readyServed?(): void;
}

export interface AdminReply {
  status: number;
  contentType?: string;
  body: string;
}

function text(status: number, body: string): AdminReply {
  return { status, contentType: 'text/plain; charset=utf-8', body: `${body}\n` };
}

function isLoopback(address: string | undefined): boolean {
  return address === '127.0.0.1' || address === '::1' || address === '::ffff:127.0.0.1';
}

/** The admin routes, as data in and data out (metrics aside). */
export async function adminReply(
  method: string,
  path: string,
  remoteAddress: string | undefined,
  deps: AdminDeps,
): Promise<AdminReply> {
  const route = path.split('?')[0];
  switch (route) {
    case '/healthz':
      return text(200, 'ok');
    case '/readyz':
      if (deps.draining()) return text(503, 'draining');
      return deps.ready() ? text(200, 'ready') : text(503, 'not ready: certificate, policy or CA bundle not loaded yet');
    case '/metrics':
      return { status: 200, contentType: deps.registry.contentType, body: await deps.registry.metrics() };
    case '/shutdown':
      if (method !== 'POST') return text(405, 'use POST /shutdown');
      // Only the pod itself may stop its proxy: the admin port is reachable on the pod IP for probes.
      if (!isLoopback(remoteAddress)) return text(403, 'shutdown is accepted from localhost only');
      return text(202, 'draining');
    default:
      return text(404, 'not found (try /healthz, /readyz, /metrics, POST /shutdown)');
  }
}

export function createAdminServer(deps: AdminDeps): Server {
  return createServer((req: IncomingMessage, res: ServerResponse) => {
    adminReply(req.method ?? 'GET', req.url ?? '/', req.socket.remoteAddress, deps).then(
      (r) => {
        res.writeHead(r.status, { 'content-type': r.contentType ?? 'text/plain', 'content-length': Buffer.byteLength(r.body) });
        res.end(r.body);
        if (r.status === 202) deps.shutdown();
        if (r.status === 200 && req.url === '/readyz') res.once('finish', () => deps.readyServed?.());
      },
      () => {
        res.writeHead(500).end();
      },
    );
  });
}
