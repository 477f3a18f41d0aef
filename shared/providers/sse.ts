// Incremental server-sent events, per the WHATWG HTML "event stream" grammar: lines end in CRLF, LF or CR (a
// CRLF may be split across chunks), `:` starts a comment, a blank line dispatches the event. Lines are split on
// bytes (CR and LF never occur inside a UTF-8 sequence), so a chunk boundary inside a character is harmless.

const LF = 0x0a;
const CR = 0x0d;
const EMPTY = Buffer.alloc(0);

/**
 * Splits a byte stream into lines. `onLine` gets the line without its terminator and the raw bytes including
 * it. When a CRLF is split across chunks, the CR ends the line and the LF that opens the next chunk is reported
 * to `onStrayLf`: it belongs to no line, but byte-exact rewriters must still pass it on.
 */
export class LineSplitter {
  private partial: Buffer[] = [];
  private afterCr = false;

  constructor(
    private readonly onLine: (line: Buffer, raw: Buffer) => void,
    private readonly onStrayLf: (raw: Buffer) => void = () => {},
  ) {}

  push(chunk: Buffer): void {
    let pos = 0;
    if (this.afterCr && chunk.length > 0) {
      this.afterCr = false;
      if (chunk[0] === LF) {
        this.onStrayLf(chunk.subarray(0, 1));
        pos = 1;
      }
    }
    let nextCr = chunk.indexOf(CR, pos);
    while (pos < chunk.length) {
      const nextLf = chunk.indexOf(LF, pos);
      if (nextCr !== -1 && nextCr < pos) nextCr = chunk.indexOf(CR, pos);
      let end: number;
      let termLen: number;
      if (nextCr !== -1 && (nextLf === -1 || nextCr < nextLf)) {
        end = nextCr;
        if (nextCr + 1 < chunk.length) termLen = chunk[nextCr + 1] === LF ? 2 : 1;
        else {
          termLen = 1;
          this.afterCr = true;
        }
      } else if (nextLf !== -1) {
        end = nextLf;
        termLen = 1;
      } else break;
      this.emit(chunk.subarray(pos, end), chunk.subarray(pos, end + termLen), end - pos);
      pos = end + termLen;
    }
    // Copied: the caller may reuse its buffer, and an unfinished line is usually short.
    if (pos < chunk.length) this.partial.push(Buffer.from(chunk.subarray(pos)));
  }

  /** Bytes of an unterminated last line, if any; the splitter forgets them. */
  takePartial(): Buffer {
    const rest = this.partial.length === 0 ? EMPTY : Buffer.concat(this.partial);
    this.partial = [];
    return rest;
  }

  private emit(line: Buffer, raw: Buffer, lineLen: number): void {
    if (this.partial.length === 0) {
      this.onLine(line, raw);
      return;
    }
    const head = Buffer.concat(this.partial);
    this.partial = [];
    const whole = Buffer.concat([head, raw]);
    this.onLine(whole.subarray(0, head.length + lineLen), whole);
  }
}

export interface SseEvent {
  /** The `event:` field; `message` when absent. */
  event: string;
  /** `data:` lines joined with LF. */
  data: string;
}

/**
 * Receives the raw bytes of each block of lines up to and including its blank line, with the event it
 * dispatched (undefined for a block that dispatched none: comments, keep-alives, an event without data).
 */
export type RawBlockHandler = (raw: Buffer, ev: SseEvent | undefined) => void;

/**
 * Parses an event stream into events; an event not ended by a blank line when the stream ends is dropped. With
 * `onBlock`, every byte is also handed on, block by block, so that a rewriter can relay what it does not change.
 */
export class SseParser {
  private readonly lines: LineSplitter;
  private event = '';
  private data: string[] = [];
  private first = true;
  /** Raw lines of the block being read (only with onBlock); views into the current chunk until `push` returns. */
  private block: Buffer[] = [];

  constructor(
    private readonly onEvent: (ev: SseEvent) => void,
    private readonly onBlock?: RawBlockHandler,
  ) {
    this.lines = onBlock
      ? new LineSplitter(
          (line, raw) => {
            this.block.push(raw);
            this.line(line);
          },
          (raw) => this.block.push(raw),
        )
      : new LineSplitter((line) => this.line(line));
  }

  push(chunk: Buffer): void {
    this.lines.push(chunk);
    // An unfinished block outlives this call: copy its lines off the caller's buffer.
    if (this.block.length > 0) this.block = this.block.map((b) => Buffer.from(b));
  }

  /** With onBlock: the bytes of an unfinished last block (an event the stream never ended), then forgets them. */
  takeRest(): Buffer {
    const rest = Buffer.concat([...this.block, this.lines.takePartial()]);
    this.block = [];
    return rest;
  }

  private line(bytes: Buffer): void {
    let text = bytes.toString('utf8');
    if (this.first) {
      this.first = false;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    if (text === '') {
      let ev: SseEvent | undefined;
      if (this.data.length > 0) {
        ev = { event: this.event || 'message', data: this.data.join('\n') };
        this.onEvent(ev);
      }
      this.event = '';
      this.data = [];
      if (this.onBlock) {
        const raw = this.block.length === 1 ? this.block[0]! : Buffer.concat(this.block);
        this.block = [];
        this.onBlock(raw, ev);
      }
      return;
    }
    if (text.charCodeAt(0) === 0x3a) return; // `:` comment, e.g. keep-alives
    const colon = text.indexOf(':');
    const field = colon === -1 ? text : text.slice(0, colon);
    let value = colon === -1 ? '' : text.slice(colon + 1);
    if (value.charCodeAt(0) === 0x20) value = value.slice(1);
    if (field === 'data') this.data.push(value);
    else if (field === 'event') this.event = value;
    // `id` and `retry` do not matter for metering.
  }
}
