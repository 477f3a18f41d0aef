import { encodeEventStreamMessage, EventStreamDecoder, type EventStreamMessage } from '../../shared/providers/event-stream.js';
import { SseParser, type SseEvent } from '../../shared/providers/sse.js';
import type { ResponseHead, Framing } from './types.js';

// One decoder per response: the runner cuts the upstream bytes into events once and hands them to every
// processor that asked. Each event carries its bytes as they came, so an event nobody changed is relayed byte
// for byte; a changed one is encoded again (SSE text, or an AWS event-stream message with valid CRCs).

export interface StreamEvent {
  readonly framing: 'sse' | 'eventstream';
  /** The bytes sent to the app for this event: upstream's, unless a transform replaced the event. */
  readonly raw: Buffer;
  /** SSE: the dispatched event; undefined for a block that dispatched none (comments, keep-alives). */
  readonly sse?: SseEvent;
  /** AWS event stream: the decoded message. */
  readonly message?: EventStreamMessage;
}

/** The framing of a response, from its content type. */
export function framingOf(head: ResponseHead): Framing {
  const v = head.headers['content-type'];
  const type = (Array.isArray(v) ? v[0] : v ?? '').split(';')[0]!.trim().toLowerCase();
  if (type === 'text/event-stream') return 'sse';
  if (type === 'application/vnd.amazon.eventstream') return 'eventstream';
  if (type === 'application/json' || type.endsWith('+json')) return 'json';
  return 'other';
}

/** A new SSE event (`event:` omitted for the default `message`), data lines split on LF. */
export function sseEvent(event: string, data: string): StreamEvent {
  const head = event === 'message' ? '' : `event: ${event}\n`;
  const lines = data.split('\n').map((l) => `data: ${l}\n`).join('');
  return { framing: 'sse', raw: Buffer.from(`${head}${lines}\n`, 'utf8'), sse: { event, data } };
}

/** A new AWS event-stream message. */
export function eventStreamEvent(headers: Record<string, string>, body: Uint8Array): StreamEvent {
  const message = { headers, body };
  return { framing: 'eventstream', raw: encodeEventStreamMessage(message), message };
}

/** The event's payload as JSON (SSE data, or the message body); undefined when it is not JSON. */
export function eventJson(ev: StreamEvent): unknown {
  const text = ev.sse ? ev.sse.data : ev.message ? Buffer.from(ev.message.body).toString('utf8') : undefined;
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** The same event carrying `value` as its JSON payload, encoded again. */
export function withJson(ev: StreamEvent, value: unknown): StreamEvent {
  const text = JSON.stringify(value);
  if (ev.sse) return sseEvent(ev.sse.event, text);
  if (ev.message) return eventStreamEvent(ev.message.headers, Buffer.from(text, 'utf8'));
  return ev;
}

/** The same event with other bytes (a byte-exact rewrite); the decoded fields stay as they were. */
export function withRaw(ev: StreamEvent, raw: Buffer): StreamEvent {
  return { ...ev, raw };
}

export interface Framer {
  /** Events completed by `chunk`, in order. */
  push(chunk: Buffer): StreamEvent[];
  /** Upstream ended: the bytes of an unfinished last event (sent as they came), or undefined. */
  end(): Buffer | undefined;
  /** The stream stopped being decodable (AWS framing or CRC error): nothing after it can be inspected. */
  readonly failed: boolean;
}

export function createFramer(framing: 'sse' | 'eventstream'): Framer {
  const out: StreamEvent[] = [];
  if (framing === 'sse') {
    const parser = new SseParser(
      () => {},
      (raw, sse) => out.push(sse ? { framing, raw, sse } : { framing, raw }),
    );
    return {
      push(chunk) {
        parser.push(chunk);
        return out.splice(0);
      },
      end() {
        const rest = parser.takeRest();
        return rest.length > 0 ? rest : undefined;
      },
      failed: false,
    };
  }
  // The decoder keeps a message's bytes only until the next push: copy them when they are a view of a chunk.
  const decoder = new EventStreamDecoder((message, raw) => out.push({ framing, raw: Buffer.from(raw), message }));
  return {
    push(chunk) {
      decoder.push(chunk);
      return out.splice(0);
    },
    end: () => undefined,
    get failed() {
      return decoder.failed;
    },
  };
}
