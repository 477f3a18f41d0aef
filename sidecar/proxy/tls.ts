import type { Socket } from 'node:net';
import { TLSSocket, type SecureContext } from 'node:tls';

// TLS termination for AI hosts. The ClientHello was already read to route the connection, so it is pushed
// back into the socket and the TLS server side reads it as if fresh. The context is chosen before the
// handshake (from the peeked SNI), so no SNI callback is needed.

/**
 * ALPN: HTTP/1.1 only for now (every provider SDK speaks it). A client that offers only h2 fails the handshake
 * and is counted as a client TLS error; h2 termination is a later step.
 */
export const ALPN = ['http/1.1'];

export function terminateTls(socket: Socket, head: Buffer, context: SecureContext): TLSSocket {
  // The capture listener allows half-open sockets for pass-through; a terminated connection must close when
  // the app's side ends (the TLS socket inherits the setting).
  socket.allowHalfOpen = false;
  socket.unshift(head);
  // TLSSocket drains what is buffered in `socket` into the TLS engine, then reads the handle natively.
  return new TLSSocket(socket, { isServer: true, secureContext: context, ALPNProtocols: ALPN });
}
