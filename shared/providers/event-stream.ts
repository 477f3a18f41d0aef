// AWS event-stream framing (application/vnd.amazon.eventstream), as Bedrock streams ConverseStream and
// InvokeModelWithResponseStream. Each message starts with its total length (4 bytes, big-endian); the smithy
// codec checks both CRCs and parses the headers — this file only cuts the byte stream into whole messages.

import { createRequire } from 'node:module';
import type { EventStreamCodec } from '@smithy/eventstream-codec';

export interface EventStreamMessage {
  /** String-valued headers (`:event-type`, `:message-type`, `:content-type`, `:exception-type`…). */
  headers: Record<string, string>;
  body: Uint8Array;
}

/** A message this long is not Bedrock's: the service caps event-stream messages far lower (16 MiB here). */
const MAX_MESSAGE = 16 * 1024 * 1024;
const PRELUDE = 12;

let codec: EventStreamCodec | undefined;

/**
 * The smithy codec, loaded on the first Bedrock stream message: every proxy imports this file, few ever see
 * an event stream, and loading the codec costs ~40 ms and several MiB at startup. Synchronous (require) because
 * messages are decoded inside a synchronous response observer.
 */
function eventStreamCodec(): EventStreamCodec {
  if (!codec) {
    const require = createRequire(import.meta.url);
    const { EventStreamCodec: Codec } = require('@smithy/eventstream-codec') as typeof import('@smithy/eventstream-codec');
    const { fromUtf8, toUtf8 } = require('@smithy/util-utf8') as typeof import('@smithy/util-utf8');
    codec = new Codec(toUtf8, fromUtf8);
  }
  return codec;
}

/**
 * Feeds whole, checksum-verified messages to `onMessage`; after a framing error it stops reading. Chunks are
 * kept by reference until their message is complete, so callers must not reuse a pushed buffer.
 */
export class EventStreamDecoder {
  private pieces: Buffer[] = [];
  private length = 0;
  /** Total length of the message being assembled; 0 while its prelude has not arrived. */
  private need = 0;
  private broken = false;

  /** `onMessage` also gets the message's bytes as they came (valid until the next push). */
  constructor(private readonly onMessage: (m: EventStreamMessage, raw: Buffer) => void) {}

  /** True once the stream turned out not to be a valid event stream. */
  get failed(): boolean {
    return this.broken;
  }

  push(chunk: Buffer): void {
    if (this.broken || chunk.length === 0) return;
    this.pieces.push(chunk);
    this.length += chunk.length;
    for (;;) {
      if (this.need === 0) {
        if (this.length < PRELUDE) return;
        const total = this.joined().readUInt32BE(0);
        if (total < 16 || total > MAX_MESSAGE) return this.fail();
        this.need = total;
      }
      if (this.length < this.need) return;
      const all = this.joined();
      let decoded;
      try {
        decoded = eventStreamCodec().decode(all.subarray(0, this.need));
      } catch {
        return this.fail();
      }
      const raw = all.subarray(0, this.need);
      const rest = all.subarray(this.need);
      this.pieces = rest.length > 0 ? [rest] : [];
      this.length = rest.length;
      this.need = 0;
      const headers: Record<string, string> = {};
      for (const [name, h] of Object.entries(decoded.headers)) {
        if (h.type === 'string') headers[name] = h.value;
      }
      this.onMessage({ headers, body: decoded.body }, raw);
    }
  }

  /** The buffered bytes as one buffer (joined only when a prelude or a whole message is there to read). */
  private joined(): Buffer {
    if (this.pieces.length !== 1) this.pieces = [Buffer.concat(this.pieces, this.length)];
    return this.pieces[0]!;
  }

  private fail(): void {
    this.broken = true;
    this.pieces = [];
    this.length = 0;
  }
}

/** One message with string headers, framed with both CRCs, as the AWS SDKs decode it. */
export function encodeEventStreamMessage(m: EventStreamMessage): Buffer {
  const headers: Record<string, { type: 'string'; value: string }> = {};
  for (const [name, value] of Object.entries(m.headers)) headers[name] = { type: 'string', value };
  return Buffer.from(eventStreamCodec().encode({ headers, body: m.body }));
}

