// Shared helpers for the filter tests: a pipeline for a filters policy, SSE and AWS event-stream bodies, and
// chunkings of a byte string (every split offset, seeded random cuts).
import { Registry } from 'prom-client';
import { encodeEventStreamMessage } from '../../../../shared/providers/event-stream.js';
import { EventStreamDecoder } from '../../../../shared/providers/event-stream.js';
import type { Exchange, Pipeline } from '../../../../sidecar/pipeline/index.js';
import { exchange, policy, respond, runRequest, setup, type Received } from '../harness.js';

export const SSE_H = { 'content-type': 'text/event-stream' };
export const JSON_H = { 'content-type': 'application/json' };
export const ES_H = { 'content-type': 'application/vnd.amazon.eventstream' };

export function filterSetup(filters: unknown[], extra: Record<string, unknown> = {}): { pipeline: Pipeline; registry: Registry; p: ReturnType<typeof policy> } {
  const p = policy({ filters, ...extra });
  const { pipeline, registry } = setup(p, new Registry());
  return { pipeline, registry, p };
}

/** Runs the request phases; returns the exchange, the verdict and the JSON the provider would receive. */
export async function send(
  s: ReturnType<typeof filterSetup>,
  host: string,
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ ex: Exchange; verdict: Awaited<ReturnType<typeof runRequest>>['verdict']; sent: string }> {
  const { ex, verdict } = await runRequest(s.pipeline, exchange(s.p, host, path, body, { headers }));
  return { ex, verdict, sent: ex.request.body.bytes().toString('utf8') };
}

/** SSE events: a string is raw data; `{event?, data}` a named event; any other object the data of a default event. */
export function sseBody(events: (object | string)[]): Buffer {
  return Buffer.from(
    events
      .map((e) => {
        if (typeof e === 'string') return `data: ${e}\n\n`;
        const named = 'data' in e ? (e as { event?: string; data: unknown }) : { data: e };
        return `${named.event ? `event: ${named.event}\n` : ''}data: ${JSON.stringify(named.data)}\n\n`;
      })
      .join(''),
  );
}

export function eventStreamBody(events: { type: string; data: unknown }[]): Buffer {
  return Buffer.concat(
    events.map((e) =>
      encodeEventStreamMessage({
        headers: { ':message-type': 'event', ':event-type': e.type, ':content-type': 'application/json' },
        body: Buffer.from(JSON.stringify(e.data)),
      }),
    ),
  );
}

/** The JSON payloads of an AWS event stream, in order. */
export function decodeEventStream(buf: Buffer): { type: string; data: unknown }[] {
  const out: { type: string; data: unknown }[] = [];
  const d = new EventStreamDecoder((m) => out.push({ type: String(m.headers[':event-type'] ?? m.headers[':exception-type']), data: JSON.parse(Buffer.from(m.body).toString('utf8')) }));
  d.push(buf);
  return out;
}

/** Seeded PRNG: the project's one (test/support/prng.ts). */
export { mulberry32 as prng } from '../../../support/prng.js';

/** Cuts `buf` at random offsets (1 to 16 bytes apart). */
export function randomChunks(buf: Buffer, rnd: () => number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; ) {
    const n = 1 + Math.floor(rnd() * 16);
    out.push(buf.subarray(i, i + n));
    i += n;
  }
  return out;
}

export async function streamOnce(s: ReturnType<typeof filterSetup>, ex: Exchange, headers: Record<string, string>, chunks: Buffer[]): Promise<Received> {
  return respond(s.pipeline, ex, 200, headers, chunks);
}

/** The concatenated text deltas of an OpenAI chat stream. */
export function openAiStreamText(body: Buffer): string {
  let text = '';
  for (const block of body.toString('utf8').split('\n\n')) {
    const data = block.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
    if (!data || data === '[DONE]') continue;
    const j = JSON.parse(data) as { choices?: { delta?: { content?: string; tool_calls?: { function?: { arguments?: string } }[] } }[] };
    for (const c of j.choices ?? []) {
      text += c.delta?.content ?? '';
      for (const t of c.delta?.tool_calls ?? []) text += t.function?.arguments ?? '';
    }
  }
  return text;
}
