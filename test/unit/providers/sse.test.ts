import { describe, expect, it } from 'vitest';
import { LineSplitter, SseParser, type SseEvent } from '../../../shared/providers/sse.js';
import { chunkings } from './support.js';

function parse(chunks: Buffer[]): SseEvent[] {
  const out: SseEvent[] = [];
  const p = new SseParser((e) => out.push(e));
  for (const c of chunks) p.push(c);
  return out;
}

describe('SseParser', () => {
  const stream = Buffer.from(
    '\ufeff: keep-alive comment\r\n' +
      'event: first\r\ndata: {"a":1}\r\n\r\n' +
      'data: line one\ndata:line two\n\n' +
      'event: third\rdata: ü€😀\r\r' +
      'id: 7\nretry: 100\ndata\n\n' +
      'event: ignored-without-data\n\n' +
      'data: unterminated',
  );
  const expected: SseEvent[] = [
    { event: 'first', data: '{"a":1}' },
    { event: 'message', data: 'line one\nline two' },
    { event: 'third', data: 'ü€😀' },
    { event: 'message', data: '' },
  ];

  it('follows the event-stream grammar: CRLF, LF and CR line ends, comments, multi-line data, BOM', () => {
    expect(parse([stream])).toEqual(expected);
  });

  it('yields the same events however the bytes are chunked', () => {
    const wrong = chunkings(stream, 60).filter(({ chunks }) => JSON.stringify(parse(chunks)) !== JSON.stringify(expected));
    expect(wrong.map((w) => w.name)).toEqual([]);
  });
});

describe('LineSplitter', () => {
  it('hands out raw bytes that add up to the input, whatever the chunking', () => {
    const input = Buffer.from('a\r\nb\rc\n\r\n\rlast');
    for (const { name, chunks } of chunkings(input)) {
      const raw: Buffer[] = [];
      const lines: string[] = [];
      const s = new LineSplitter(
        (line, r) => {
          lines.push(line.toString());
          raw.push(Buffer.from(r));
        },
        (r) => raw.push(Buffer.from(r)),
      );
      for (const c of chunks) s.push(c);
      raw.push(s.takePartial());
      expect(Buffer.concat(raw).toString(), name).toBe(input.toString());
      expect(lines, name).toEqual(['a', 'b', 'c', '', '']);
    }
  });
});
