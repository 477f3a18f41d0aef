import { connect as tlsConnect, type TLSSocket } from 'node:tls';

// An HTTP/2 client that writes frames byte by byte as an attacker would (node:http2's client refuses to send
// most of them), and reads what the server answers: GOAWAY, RST_STREAM, the end of the connection.

export const FRAME = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9 } as const;
export const FLAG = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4 } as const;
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([h, payload]);
}

/** HPACK integer with an N-bit prefix (RFC 7541 §5.1); `first` holds the pattern bits above the prefix. */
function hpackInt(value: number, prefixBits: number, first: number): Buffer {
  const max = (1 << prefixBits) - 1;
  if (value < max) return Buffer.from([first | value]);
  const out = [first | max];
  let v = value - max;
  while (v >= 128) {
    out.push((v % 128) + 128);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return Buffer.from(out);
}

const str = (s: string): Buffer => Buffer.concat([hpackInt(Buffer.byteLength(s), 7, 0), Buffer.from(s, 'latin1')]);

export const hpack = {
  /** Literal field, not indexed, new name (RFC 7541 §6.2.2). */
  literal: (name: string, value: string): Buffer => Buffer.concat([Buffer.from([0x00]), str(name), str(value)]),
  /** Literal field added to the dynamic table, new name (§6.2.1). */
  indexed: (name: string, value: string): Buffer => Buffer.concat([Buffer.from([0x40]), str(name), str(value)]),
  /** A reference to table entry `index` (static 1–61, dynamic from 62; §6.1). */
  ref: (index: number): Buffer => hpackInt(index, 7, 0x80),
};

/** :method GET, :scheme https, :path /v1/models, :authority `host`: the start of every request block here. */
export function requestBlock(host: string, method = 'GET'): Buffer {
  return Buffer.concat([
    method === 'GET' ? hpack.ref(2) : hpack.literal(':method', method),
    hpack.ref(7), // :scheme https
    hpack.literal(':path', '/v1/models'),
    hpack.literal(':authority', host),
  ]);
}

export interface Received {
  /** The first GOAWAY (node sends a second, NO_ERROR, as it closes). */
  goaway?: { lastStreamId: number; code: number };
  rst: Map<number, number>;
  /** Stream ids a HEADERS frame (a response) came back on. */
  answered: Set<number>;
  pingAcks: number;
  settingsAcks: number;
  bytes: number;
}

export class RawH2 {
  readonly received: Received = { rst: new Map(), answered: new Set(), pingAcks: 0, settingsAcks: 0, bytes: 0 };
  readonly closed: Promise<void>;
  private buf: Buffer = Buffer.alloc(0);
  private isClosed = false;

  private constructor(readonly socket: TLSSocket) {
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.isClosed = true;
        resolve();
      }),
    );
    socket.on('error', () => undefined);
    socket.on('data', (c: Buffer) => this.read(c));
  }

  static connect(port: number, servername: string, caPem: string): Promise<RawH2> {
    return new Promise((resolve, reject) => {
      const s = tlsConnect({ host: '127.0.0.1', port, servername, ca: caPem, ALPNProtocols: ['h2'] }, () => {
        if (s.alpnProtocol !== 'h2') {
          reject(new Error(`ALPN: ${String(s.alpnProtocol)}`));
          return;
        }
        const c = new RawH2(s);
        s.write(Buffer.concat([PREFACE, frame(FRAME.SETTINGS, 0, 0)]));
        resolve(c);
      });
      s.once('error', reject);
    });
  }

  get isOpen(): boolean {
    return !this.isClosed && !this.socket.destroyed;
  }

  /** Writes `next()` until it returns undefined or the connection ends; resolves with how many were written. */
  async flood(next: (i: number) => Buffer | undefined): Promise<number> {
    let i = 0;
    for (;;) {
      if (!this.isOpen) return i;
      const f = next(i);
      if (f === undefined) return i;
      i++;
      if (!this.socket.write(f)) {
        const ok = await Promise.race([
          new Promise<boolean>((r) => this.socket.once('drain', () => r(true))),
          this.closed.then(() => false),
        ]);
        if (!ok) return i;
      }
    }
  }

  /** Resolves once the server has ended the connection, or after `ms` (then it is still open). */
  async closedWithin(ms: number): Promise<boolean> {
    return Promise.race([this.closed.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);
  }

  close(): void {
    this.socket.destroy();
  }

  private read(chunk: Buffer): void {
    this.received.bytes += chunk.length;
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    while (this.buf.length >= 9) {
      const len = this.buf.readUIntBE(0, 3);
      if (this.buf.length < 9 + len) return;
      const type = this.buf[3]!;
      const flags = this.buf[4]!;
      const id = this.buf.readUInt32BE(5) & 0x7fffffff;
      const p = this.buf.subarray(9, 9 + len);
      this.buf = this.buf.subarray(9 + len);
      if (type === FRAME.GOAWAY) this.received.goaway ??= { lastStreamId: p.readUInt32BE(0) & 0x7fffffff, code: p.readUInt32BE(4) };
      else if (type === FRAME.RST_STREAM) this.received.rst.set(id, p.readUInt32BE(0));
      else if (type === FRAME.HEADERS) this.received.answered.add(id);
      else if (type === FRAME.PING && flags & FLAG.ACK) this.received.pingAcks++;
      else if (type === FRAME.SETTINGS && flags & FLAG.ACK) this.received.settingsAcks++;
      else if (type === FRAME.SETTINGS && this.isOpen) this.socket.write(frame(FRAME.SETTINGS, FLAG.ACK, 0));
    }
  }
}
