import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { Logger } from '../../shared/log.js';

/** A logger whose JSON lines are kept in memory, for tests that check what is (and is not) logged. */
export function captureLogger(): { log: Logger; text(): string; lines(): Array<Record<string, unknown>> } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString('utf8'));
      cb();
    },
  });
  const log = pino({ level: 'debug' }, stream);
  return {
    log,
    text: () => chunks.join(''),
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}
