import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';

/**
 * Serves `leaf` on loopback and connects as a standard TLS client trusting only `caPem`, asking for
 * `servername`: 'ok' when the client accepts the chain for that name, else the client's error code.
 */
export async function handshake(leaf: { certPem: string; keyPem: string }, caPem: string, servername: string): Promise<string> {
  const server = tls.createServer({ cert: leaf.certPem, key: leaf.keyPem }, (s) => s.end());
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  try {
    return await new Promise<string>((resolve) => {
      const c = tls.connect({ port, host: '127.0.0.1', servername, ca: caPem }, () => {
        resolve('ok');
        c.end();
      });
      c.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    });
  } finally {
    server.close();
  }
}
