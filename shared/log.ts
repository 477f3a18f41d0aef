import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino';

export type { Logger };

/**
 * One JSON logger per process. Prompt text and credentials are never logged; the redact list is a second
 * line of defence for headers that might reach a log by accident.
 */
export function createLogger(name: string, opts: LoggerOptions = {}, destination?: DestinationStream): Logger {
  const options: LoggerOptions = {
    name,
    level: process.env.AIGRESS_LOG_LEVEL ?? 'info',
    base: { component: name },
    redact: {
      paths: [
        'headers.authorization',
        'headers["x-api-key"]',
        'headers["api-key"]',
        'headers["x-goog-api-key"]',
        'req.headers.authorization',
      ],
      censor: '[redacted]',
    },
    ...opts,
  };
  return destination ? pino(options, destination) : pino(options);
}
