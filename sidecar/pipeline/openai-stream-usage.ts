import { CONTINUE } from './deny.js';
import type { RequestProcessor, ResponseProcessor } from './types.js';

// Streamed usage for providers that send it only on request (OpenAI chat: `stream_options.include_usage`).
// The request half asks upstream for it when the client did not; the response half removes what asking added
// (the usage-only chunk, `"usage":null` members), so the client's stream is byte for byte what it asked for.
// The metering observer runs before the response half and so still sees the usage chunk.

const FACT = 'usageInjected';

export function streamUsageRequestProcessor(): RequestProcessor {
  return {
    name: 'openai-stream-usage',
    onRequest(ex) {
      const opt = ex.request.adapter.streamUsage;
      const d = ex.described;
      if (!opt || !d?.stream) return CONTINUE;
      const body = opt.inject(ex.request, d);
      if (!body) return CONTINUE;
      ex.facts[FACT] = true;
      return { action: 'rewrite', body };
    },
  };
}

export function streamUsageResponseProcessor(): ResponseProcessor {
  return {
    name: 'openai-stream-usage',
    onResponse(ex, head) {
      const opt = ex.request.adapter.streamUsage;
      if (ex.facts[FACT] !== true || !opt) return undefined;
      // Errors come back as JSON, untouched by the option.
      const type = String(head.headers['content-type'] ?? '');
      if (head.status < 200 || head.status >= 300 || !type.toLowerCase().startsWith('text/event-stream')) return undefined;
      const stripper = opt.createStripper();
      return {
        onChunk: (chunk) => stripper.push(chunk),
        flush: () => stripper.flush(),
      };
    },
  };
}
