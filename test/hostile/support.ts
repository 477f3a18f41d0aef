import { connect as h2Connect, type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders } from 'node:http2';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { Duplex } from 'node:stream';
import { fakeUpstream, type TestPki } from '../unit/proxy/support.js';

// Clients that misbehave on purpose: raw bytes on TCP or TLS (nothing normalised by a client library), and an
// HTTP/2 session with its own send limits lifted.

/** A TLS connection to the capture port as a redirected app opens it (SNI = the provider). */
export function tlsTo(port: number, servername: string, caPem: string, alpn: string[] = ['http/1.1']): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, servername, ca: caPem, ALPNProtocols: alpn }, () => resolve(s));
    s.once('error', reject);
  });
}

export function tcpTo(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = netConnect(port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
}

/**
 * Writes `bytes`, then keeps writing `trailing` (a body the server will not want) while it reads; resolves
 * with everything received before the connection ended, and whether it ended in a reset.
 */
export function exchange(socket: Duplex, bytes: string | Buffer, trailing = 0): Promise<{ text: string; reset: boolean }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let reset = false;
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNRESET' || err.code === 'EPIPE') reset = true;
    });
    socket.on('close', () => resolve({ text: Buffer.concat(chunks).toString('latin1'), reset }));
    socket.write(bytes);
    let left = trailing;
    const pump = (): void => {
      while (left > 0 && !socket.destroyed) {
        const n = Math.min(16_384, left);
        left -= n;
        if (!socket.write(Buffer.alloc(n, 0x61))) {
          socket.once('drain', pump);
          return;
        }
      }
    };
    pump();
  });
}

/** An HTTP/2 session through the capture port (ALPN h2 only), allowed to send large header blocks. */
export function h2Session(port: number, servername: string, caPem: string): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const s = h2Connect(`https://${servername}`, {
      maxSendHeaderBlockLength: 1 << 20,
      createConnection: () => tlsConnect({ host: '127.0.0.1', port, servername, ca: caPem, ALPNProtocols: ['h2'] }),
    });
    s.once('remoteSettings', () => resolve(s));
    s.once('error', reject);
  });
}

export interface H2Result {
  status?: number;
  headers?: IncomingHttpHeaders;
  body: string;
  /** RST_STREAM code when the stream was reset instead of answered. */
  rstCode?: number;
}

export function h2Result(st: ClientHttp2Stream): Promise<H2Result> {
  return new Promise((resolve) => {
    const out: H2Result = { body: '' };
    st.on('response', (h) => {
      out.status = Number(h[':status']);
      out.headers = h;
    });
    st.on('data', (c: Buffer) => (out.body += c.toString()));
    st.on('error', () => undefined);
    st.on('close', () => {
      if (out.status === undefined) out.rstCode = st.rstCode;
      resolve(out);
    });
  });
}

/** The fake provider of the hostile suites: answers `{}` once a request's body ended, counting what reached it. */
export interface CountingProvider {
  readonly port: number;
  /** Requests that reached the provider so far. */
  readonly reached: number;
  close(): Promise<void>;
}

export async function countingProvider(pki: TestPki, host: string): Promise<CountingProvider> {
  let reached = 0;
  const up = await fakeUpstream(pki, host, (req, res) => {
    reached++;
    req.resume();
    req.on('end', () => res.end('{}'));
  });
  return {
    port: up.port,
    get reached() {
      return reached;
    },
    close: () => up.close(),
  };
}

/** What a client loop collected: every answer by the item it asked for, and every request that failed. */
export interface ClientLoad<T, A> {
  readonly answers: ({ item: T } & A)[];
  readonly errors: string[];
  /** Stops the loop after each client's request in flight. */
  stop(): Promise<void>;
}

/** `clients` concurrent loops, each asking for the items in turn (client w starting at item w) until stopped. */
export function clientLoad<T extends string, A>(items: readonly T[], clients: number, ask: (item: T) => Promise<A>): ClientLoad<T, A> {
  const answers: ({ item: T } & A)[] = [];
  const errors: string[] = [];
  let running = true;
  const client = async (w: number): Promise<void> => {
    for (let i = w; running; i++) {
      const item = items[i % items.length]!;
      try {
        answers.push({ item, ...(await ask(item)) });
      } catch (err) {
        errors.push(`${item}: ${(err as Error).message}`);
      }
    }
  };
  const all = Promise.all(Array.from({ length: clients }, (_, w) => client(w)));
  return {
    answers,
    errors,
    async stop() {
      running = false;
      await all;
    },
  };
}
