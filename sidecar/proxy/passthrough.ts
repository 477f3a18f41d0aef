import { connect, type Socket } from 'node:net';

// Untouched TCP for hosts no provider claims: the peeked bytes are replayed to the real host and the two
// sockets are piped both ways, so the app sees the real server's certificate. Without SO_ORIGINAL_DST the
// proxy dials the name the app asked for (SNI or Host) at the assumed port (443 for TLS, Host's or 80 for HTTP).

export interface PassthroughTarget {
  host: string;
  port: number;
}

export interface PassthroughOptions {
  connectTimeoutMs: number;
  /** Called once when both sides are closed; `error` names why it failed, if it did. */
  onClose?: (error?: string) => void;
}

export function passThrough(client: Socket, head: Buffer, target: PassthroughTarget, opts: PassthroughOptions): Socket {
  const host = target.host.startsWith('[') ? target.host.slice(1, -1) : target.host;
  const upstream = connect({ host, port: target.port, allowHalfOpen: true, noDelay: true });
  let failure: string | undefined;
  let closed = 0;
  const onClosed = (): void => {
    if (++closed === 2) opts.onClose?.(failure);
  };
  const fail = (why: string): void => {
    failure ??= why;
    client.destroy();
    upstream.destroy();
  };
  upstream.setTimeout(opts.connectTimeoutMs, () => fail('connect timeout'));
  upstream.once('connect', () => {
    upstream.setTimeout(0);
    upstream.write(head);
    client.pipe(upstream);
    upstream.pipe(client);
    client.resume();
  });
  upstream.on('error', (err: NodeJS.ErrnoException) => fail(err.code ?? err.message));
  client.on('error', (err: NodeJS.ErrnoException) => fail(err.code ?? err.message));
  upstream.once('close', () => {
    client.destroySoon();
    onClosed();
  });
  client.once('close', () => {
    upstream.destroySoon();
    onClosed();
  });
  return upstream;
}
