import { isObj as isObject } from '../../shared/json.js';

// gen_ai.response.finish_reasons: why the model stopped, as each provider names it, read from a JSON response
// or a stream's events. One reader for every wire format the proxy meters: OpenAI-shaped `choices[].
// finish_reason` (OpenAI, Azure, Mistral, the OpenAI-compatible endpoints), Anthropic `stop_reason` (also on
// Vertex AI and Bedrock InvokeModel, whose stream events wrap it in base64 `bytes`), Gemini `candidates[].
// finishReason`, Bedrock Converse `stopReason`, and the Responses API's status.

const MAX_REASONS = 8;
const MAX_LENGTH = 64;
/** Cheap pre-check for stream events: most carry no finish reason and are not parsed. */
export const MAY_HOLD_REASON = /"(?:finish_reason|stop_reason|finishReason|stopReason|bytes)"\s*:\s*"|"type"\s*:\s*"response\.(?:completed|incomplete|failed)"/;

export class FinishReasons {
  private readonly seen: string[] = [];

  get reasons(): readonly string[] {
    return this.seen;
  }

  private add(v: unknown): void {
    if (typeof v !== 'string' || v === '' || v.length > MAX_LENGTH || this.seen.length >= MAX_REASONS) return;
    if (!this.seen.includes(v)) this.seen.push(v);
  }

  /** Reads one JSON document (a body, or one event's payload). */
  read(doc: unknown, depth = 0): void {
    if (depth > 3) return;
    if (Array.isArray(doc)) {
      for (const d of doc.slice(0, 1_000)) this.read(d, depth + 1);
      return;
    }
    if (!isObject(doc)) return;
    if (Array.isArray(doc.choices)) for (const c of doc.choices) if (isObject(c)) this.add(c.finish_reason);
    if (Array.isArray(doc.candidates)) for (const c of doc.candidates) if (isObject(c)) this.add(c.finishReason);
    this.add(doc.stop_reason);
    this.add(doc.stopReason);
    if (isObject(doc.delta)) this.add(doc.delta.stop_reason);
    // Responses API: the final response object, alone or in its completion event.
    const r = doc.object === 'response' ? doc : typeof doc.type === 'string' && /^response\.(completed|incomplete|failed)$/.test(doc.type) && isObject(doc.response) ? doc.response : undefined;
    if (r) this.add(isObject(r.incomplete_details) && typeof r.incomplete_details.reason === 'string' ? r.incomplete_details.reason : r.status);
    // Bedrock InvokeModelWithResponseStream: the model's own event, base64 JSON in `bytes`.
    if (typeof doc.bytes === 'string' && doc.bytes.length < 1_000_000) {
      try {
        this.read(JSON.parse(Buffer.from(doc.bytes, 'base64').toString('utf8')), depth + 1);
      } catch {
        // not JSON inside: nothing to read
      }
    }
  }
}
