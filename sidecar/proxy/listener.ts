import { createServer, type Server, type Socket } from 'node:net';
import { PEEK_LIMIT, peek, type PeekResult } from './peek.js';

// The capture listener: the iptables REDIRECT rules land the pod's outbound 80/443 here. It binds loopback
// only (REDIRECT of locally generated traffic targets 127.0.0.1 / ::1), so other pods cannot use it as a proxy.

export type PeekOutcome =
  | { kind: 'peeked'; result: Exclude<PeekResult, { kind: 'more' }>; head: Buffer }
  /** The client sent too little for too long (or a server-speaks-first protocol). */
  | { kind: 'timeout'; head: Buffer }
  /** The client went away before saying enough. */
  | { kind: 'closed' };

/**
 * Reads the first bytes of `socket` until `peek` can classify them, the limit, or the timeout. On `peeked`
 * the socket is paused with nothing consumed but `head`: the caller replays or unshifts it.
 */
export function peekConnection(socket: Socket, timeoutMs: number, silentMs?: number): Promise<PeekOutcome> {
  return new Promise((resolve) => {
    let head: Buffer = Buffer.alloc(0);
    let done = false;
    const finish = (o: PeekOutcome): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearTimeout(silent);
      socket.pause();
      socket.off('data', onData);
      socket.off('end', onGone);
      socket.off('close', onGone);
      socket.off('error', onGone);
      resolve(o);
    };
    const onData = (chunk: Buffer): void => {
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      const result = peek(head);
      if (result.kind !== 'more') finish({ kind: 'peeked', result, head });
      else if (head.length >= PEEK_LIMIT) finish({ kind: 'peeked', result: { kind: 'unknown', reason: 'nothing recognisable in the first 64 KiB' }, head });
    };
    const onGone = (): void => finish({ kind: 'closed' });
    const timer = setTimeout(() => finish({ kind: 'timeout', head }), timeoutMs);
    // A server-first protocol (MySQL, SMTP, FTP…) sends nothing until the server speaks: when the caller can
    // route by address, it need not wait the full timeout for a client that is silent, only a short while.
    const silent = silentMs === undefined ? undefined : setTimeout(() => head.length === 0 && finish({ kind: 'timeout', head }), silentMs);
    socket.on('data', onData);
    socket.once('end', onGone);
    socket.once('close', onGone);
    socket.once('error', onGone);
  });
}

/**
 * Binds the capture port on each address. With port 0 the first bind picks the port and the others reuse
 * it; an address family the host lacks (no IPv6) is skipped, not fatal, as long as one address binds.
 */
export async function listenCapture(
  addresses: readonly string[],
  port: number,
  onConnection: (socket: Socket) => void,
): Promise<{ servers: Server[]; port: number; skipped: { address: string; code: string }[] }> {
  const servers: Server[] = [];
  const skipped: { address: string; code: string }[] = [];
  let bound = port;
  for (const address of addresses) {
    // allowHalfOpen: a pass-through client may shut its side while the server still answers.
    const server = createServer({ allowHalfOpen: true, noDelay: true, pauseOnConnect: false }, onConnection);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host: address, port: bound, ipv6Only: address.includes(':') }, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'unknown';
      const familyMissing = code === 'EADDRNOTAVAIL' || code === 'EAFNOSUPPORT';
      if (!familyMissing || addresses.length === 1) {
        await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
        throw Object.assign(new Error(`cannot listen on ${address}:${bound}: ${code}`), { code });
      }
      skipped.push({ address, code });
      continue;
    }
    servers.push(server);
    const addr = server.address();
    if (addr && typeof addr === 'object') bound = addr.port;
  }
  if (servers.length === 0) throw new Error(`cannot listen on any of ${addresses.join(', ')}`);
  return { servers, port: bound, skipped };
}
