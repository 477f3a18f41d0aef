import { pino } from 'pino';
import { ControlPlaneServer } from '../../webhook/server.js';
import type { Route } from '../../webhook/policy/http.js';

/** The control plane's HTTPS server on loopback with `routes` mounted, as `aigress webhook` mounts them. */
export async function serveRoutes(routes: Route[], tls: { certPem: string; keyPem: string }): Promise<{ server: ControlPlaneServer; url: string; close(): Promise<void> }> {
  const server = await ControlPlaneServer.create({ tls, logger: pino({ level: 'silent' }) });
  for (const r of routes) server.addRoute(r.method, r.path, r.handler, r.options);
  const port = await server.listen(0, '127.0.0.1');
  return {
    server,
    url: `https://127.0.0.1:${port}`,
    close: async () => {
      server.server.closeAllConnections();
      await server.close();
    },
  };
}
