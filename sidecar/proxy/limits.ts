import type { Duplex } from 'node:stream';
import { PEEK_LIMIT } from './peek.js';

// Limits on what an app may send in one request head, the same for HTTP/1.1 and HTTP/2, and the pure check
// both fronts (h1.ts, h2.ts) run before a request reaches the Mediator. A request over a limit gets a readable
// 431, not a reset: the app (and its operator) must be able to tell "too large" from "the network broke".

/** Largest header block (names + values, as HTTP/1.1 would carry them) the proxy accepts: 64 KiB. */
export const MAX_HEADER_BYTES = PEEK_LIMIT;
/** Most header fields one request may carry (pseudo-headers not counted). */
export const MAX_HEADER_FIELDS = 256;
/**
 * Protocol-level ceilings, well above the limits so that a request just over them is still parsed and can be
 * answered 431; beyond these the HTTP/2 stream is reset (RST_STREAM) or the HTTP/1.1 parser gives up (431).
 */
export const HARD_HEADER_BYTES = 2 * MAX_HEADER_BYTES;
export const HARD_HEADER_FIELDS = 4 * MAX_HEADER_FIELDS;
/** HTTP/2 streams one session may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS). */
export const MAX_CONCURRENT_STREAMS = 100;
/**
 * The answer to an HTTP/1.1 parse failure (node:http's clientError): what a client can act on, named. A
 * chunk extension over node's 16 KiB limit is a request too large (413), a head not complete within
 * --client-header-timeout 408; everything else the parser refuses (smuggling-prone framing, bare LF, NUL,
 * obs-fold) 400.
 */
export function parseProblem(err: { code?: string | undefined; reason?: unknown }): HeadProblem {
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW':
      return { status: 431, message: `aigress: header block over ${MAX_HEADER_BYTES} bytes` };
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return { status: 413, message: 'aigress: chunk extensions over 16 KiB' };
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return { status: 408, message: 'aigress: the request head did not arrive in time' };
    default: {
      const why = typeof err.reason === 'string' && err.reason !== '' ? `: ${err.reason}` : '';
      return { status: 400, message: `aigress: malformed HTTP request (${err.code ?? 'parse error'})${why}` };
    }
  }
}

/**
 * HTTP/2 frames a session may send that cost the proxy work but carry no request: PING and SETTINGS (each
 * answered with an ACK), and streams the app itself resets before their answer (rapid reset). Each kind gets a
 * token bucket (burst, refill per second); a session that empties one is ended with GOAWAY ENHANCE_YOUR_CALM.
 * Honest clients send a few PINGs a minute and cancel a stream now and then. The reset bucket stays under
 * nghttp2's own (1,000, then 33 a second): past that nghttp2 sends GOAWAY but keeps the connection open, reading
 * and discarding whatever the client sends, and this budget would never see another reset.
 */
export const H2_CONTROL_BUDGET = { burst: 500, perSecond: 50 } as const;
export const H2_RESET_BUDGET = { burst: 800, perSecond: 30 } as const;

/** A token bucket: take() is false once `burst` were taken faster than `perSecond` refills them. */
export class RateGuard {
  private tokens: number;
  private last: number;

  constructor(
    private readonly burst: number,
    private readonly perSecond: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.tokens = burst;
    this.last = now();
  }

  take(): boolean {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) * this.perSecond) / 1000);
    this.last = t;
    if (this.tokens < 1) return false;
    this.tokens--;
    return true;
  }
}

/** After a refusal, how long the proxy keeps reading (and discarding) before it closes the connection. */
export const DISCARD_LINGER_MS = 1_000;

export interface HeadProblem {
  status: 400 | 408 | 413 | 431;
  message: string;
}

/**
 * What is wrong with a request's raw header list (name, value, name, value…; HTTP/2 pseudo-headers included
 * or not), if anything: too many fields, too many bytes, or more than one Host field.
 */
export function checkHead(raw: readonly string[]): HeadProblem | undefined {
  let fields = 0;
  let bytes = 0;
  let hosts = 0;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.startsWith(':')) continue;
    fields++;
    bytes += name.length + raw[i + 1]!.length + 4; // "name: value\r\n"
    if (name.length === 4 && name.toLowerCase() === 'host') hosts++;
  }
  if (fields > MAX_HEADER_FIELDS) return { status: 431, message: `aigress: more than ${MAX_HEADER_FIELDS} header fields` };
  if (bytes > MAX_HEADER_BYTES) return { status: 431, message: `aigress: header block of ${bytes} bytes; the limit is ${MAX_HEADER_BYTES}` };
  if (hosts > 1) return { status: 400, message: 'aigress: more than one Host header' };
  return undefined;
}

/** What watchBody watches: an HTTP/1.1 IncomingMessage or an HTTP/2 request, before the Mediator reads it. */
interface BodySource {
  on(event: 'data', listener: (chunk: Buffer) => void): unknown;
  once(event: 'end', listener: () => void): unknown;
}

/**
 * Calls `onStall` when a request body pauses longer than `ms` between bytes (or before its first one). The
 * watch ends with the body: waiting for the provider afterwards is the upstream timeout's business.
 */
export function watchBody(req: BodySource, ms: number, onStall: () => void, done: { once(event: 'close', listener: () => void): unknown }): void {
  let timer: NodeJS.Timeout | undefined = setTimeout(onStall, ms);
  timer.unref();
  const stop = (): void => {
    if (timer) clearTimeout(timer);
    timer = undefined;
  };
  req.on('data', () => timer?.refresh());
  req.once('end', stop);
  done.once('close', stop);
}

/**
 * Sends `response` and closes, but reads and discards what the client still sends for a moment first: closing
 * a socket with unread bytes in the kernel's buffer sends a reset, and the client's stack then drops the answer
 * it has not read yet. Destroyed after DISCARD_LINGER_MS (or sooner, once the client has hung up).
 */
export function answerAndDiscard(socket: Duplex, response: string): void {
  socket.on('data', () => undefined);
  socket.on('end', () => {
    if (socket.writableFinished) socket.destroy();
  });
  socket.resume();
  socket.end(response);
  setTimeout(() => socket.destroy(), DISCARD_LINGER_MS).unref();
}

/** The raw HTTP/1.1 response for a refusal before the Mediator (plain text: no provider is known for sure). */
export function rawResponse(status: 400 | 403 | 405 | 408 | 413 | 431 | 501, message: string, contentType = 'text/plain'): string {
  const reason = {
    400: 'Bad Request',
    403: 'Forbidden',
    405: 'Method Not Allowed',
    408: 'Request Timeout',
    413: 'Payload Too Large',
    431: 'Request Header Fields Too Large',
    501: 'Not Implemented',
  }[status];
  const body = contentType === 'text/plain' && message !== '' ? `${message}\n` : message;
  return `HTTP/1.1 ${status} ${reason}\r\ncontent-type: ${contentType}\r\nconnection: close\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}
