import type { Socket } from 'node:net';
import { TLSSocket, type SecureContext } from 'node:tls';

// TLS termination for AI hosts. The ClientHello was already read to route the connection, so it is pushed
// back into the socket and the TLS server side reads it as if fresh. The context is chosen before the
// handshake (from the peeked SNI), so no SNI callback is needed.

/**
 * ALPN: h2 first, then http/1.1 (the server's order decides). Clients whose default transport is HTTP/2 (the AWS
 * SDK's bedrock-runtime, Go, curl, Java's HttpClient) get it and are served by h2.ts; a client that offers
 * no ALPN, or only http/1.1, gets HTTP/1.1. Either way the proxy talks HTTP/1.1 to the provider.
 */
export const ALPN = ['h2', 'http/1.1'];

export function terminateTls(socket: Socket, head: Buffer, context: SecureContext): TLSSocket {
  // The capture listener allows half-open sockets for pass-through; a terminated connection must close when
  // the app's side ends (the TLS socket inherits the setting).
  socket.allowHalfOpen = false;
  socket.unshift(head);
  // TLSSocket drains what is buffered in `socket` into the TLS engine, then reads the handle natively.
  const tls = new TLSSocket(socket, { isServer: true, secureContext: context, ALPNProtocols: ALPN });
  // tls.Server clears this before 'secureConnection'; a TLSSocket made by hand keeps it true forever, and
  // node:http2 would then wait for a 'secureConnect' that never comes before reading the session.
  tls.once('secure', () => Object.assign(tls, { secureConnecting: false }));
  return tls;
}
