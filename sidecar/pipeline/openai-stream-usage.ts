import { withRaw } from './framing.js';
import { providerRequest } from './describe.js';
import { CONTINUE } from './deny.js';
import type { Processor } from './types.js';

// Streamed usage for providers that send it only on request (OpenAI chat: `stream_options.include_usage`).
// The request half asks upstream for it when the client did not; the response half removes what asking added
// (the usage-only chunk, `"usage":null` members), so the client's stream is byte for byte what it asked for.
// Metering observes the upstream events before any transform, so it still sees the usage chunk.

export function streamUsageProcessor(): Processor {
  const self: Processor = {
    name: 'openai-stream-usage',
    type: 'stream-usage',
    phase: 'transform',
    onRequest(ex) {
      const opt = ex.adapter.streamUsage;
      const d = ex.described;
      if (!opt || !d.stream) return CONTINUE;
      // The body as it stands now: an earlier step's rewrite (a redaction) is what gets the option added.
      const body = opt.inject(providerRequest(ex), d);
      if (!body) return CONTINUE;
      ex.request.body.replace(body);
      ex.slot(self, () => true);
      ex.facts.usageInjected = true;
      return CONTINUE;
    },
    onResponse(ex, head, framing) {
      const opt = ex.adapter.streamUsage;
      if (!opt || framing !== 'sse' || !ex.slot(self, () => false)) return undefined;
      // Errors come back as JSON, untouched by the option.
      if (head.status < 200 || head.status >= 300) return undefined;
      const stripper = opt.createStripper();
      return {
        // Each event is whole, so the stripper answers for it at once; it keeps nothing between events.
        event(ev) {
          const out = stripper.push(ev.raw);
          return out.length === 0 ? [] : [out === ev.raw ? ev : withRaw(ev, out)];
        },
        flush() {
          const rest = stripper.flush();
          return rest.length === 0 ? [] : [{ framing: 'sse', raw: rest }];
        },
      };
    },
  };
  return self;
}
