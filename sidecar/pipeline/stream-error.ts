import type { ProviderAdapter } from '../../shared/providers/types.js';
import { encodeEventStreamMessage } from '../../shared/providers/event-stream.js';
import type { Deny, ResponseHead } from './types.js';

// How a stream the proxy must stop ends for the app: the way that provider ends a stream that fails, so SDKs
// raise their own error type with the proxy's message. OpenAI-shaped streams carry `data: {"error":…}`;
// Anthropic sends `event: error`; Bedrock's event streams end with an exception message.

export function streamErrorEvent(adapter: ProviderAdapter, framing: 'sse' | 'eventstream', _head: ResponseHead, d: Deny): Buffer {
  const e = adapter.errorResponse(d.kind, d.status, d.message);
  if (framing === 'eventstream') {
    const type = e.headers['x-amzn-errortype'] ?? 'ValidationException';
    return encodeEventStreamMessage({
      headers: { ':message-type': 'exception', ':exception-type': type, ':content-type': 'application/json' },
      body: Buffer.from(JSON.stringify({ message: d.message })),
    });
  }
  const body = e.body.replace(/\r?\n/g, ' ');
  return Buffer.from(adapter.id === 'anthropic' ? `event: error\ndata: ${body}\n\n` : `data: ${body}\n\n`);
}
