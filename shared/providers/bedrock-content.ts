import { anthropicMessagesCodec } from './anthropic-content.js';
import { arr, indexKey, obj, Segments, type ContentCodec, type JsonPath } from './content.js';
import type { JsonObject } from './request.js';

// Amazon Bedrock's wire formats. Converse / ConverseStream have one documented shape for every model:
// `system[].text`, `messages[].content[]` blocks ({text}, {toolUse:{input}}, {toolResult:{content:[{text}|{json}]}},
// {image|document|video: bytes} left alone), `output.message.content[]` in responses, and the ConverseStream
// `contentBlockDelta` event ({delta:{text}|{toolUse:{input}}|{reasoningContent:{text}}}).
// InvokeModel bodies are the model family's own format, chosen by model ID; InvokeModelWithResponseStream wraps
// each of the family's stream chunks as base64 JSON in a `chunk` event's `bytes`.

function converseBlocks(s: Segments, list: unknown, path: JsonPath, role: string): void {
  arr(list).forEach((b, i) => {
    const block = obj(b);
    if (!block) return;
    const at = [...path, i];
    s.add(block.text, [...at, 'text'], role, 'text');
    const use = obj(block.toolUse);
    if (use) s.walk(use.input, [...at, 'toolUse', 'input'], role, 'tool_arguments');
    const result = obj(block.toolResult);
    if (result) {
      arr(result.content).forEach((c, j) => {
        const inner = obj(c);
        if (!inner) return;
        s.add(inner.text, [...at, 'toolResult', 'content', j, 'text'], 'tool', 'tool_result');
        if (inner.json !== undefined) s.walk(inner.json, [...at, 'toolResult', 'content', j, 'json'], 'tool', 'tool_result');
      });
    }
    const reasoning = obj(obj(block.reasoningContent)?.reasoningText);
    if (reasoning) s.add(reasoning.text, [...at, 'reasoningContent', 'reasoningText', 'text'], role, 'reasoning');
  });
}

function converseRequest(json: JsonObject): Segments {
  const s = new Segments();
  converseBlocks(s, json.system, ['system'], 'system');
  arr(json.messages).forEach((m, i) => {
    const msg = obj(m);
    if (msg) converseBlocks(s, msg.content, ['messages', i, 'content'], typeof msg.role === 'string' ? msg.role : 'user');
  });
  return s;
}

function converseDelta(s: Segments, payload: JsonObject, type: string): void {
  if (type !== 'contentBlockDelta') return;
  const d = obj(payload.delta);
  const ch = `block.${indexKey(payload.contentBlockIndex)}`;
  if (!d) return;
  s.add(d.text, ['delta', 'text'], 'assistant', 'text', ch);
  const use = obj(d.toolUse);
  if (use) s.addJson(use.input, ['delta', 'toolUse', 'input'], 'assistant', ch);
  const r = obj(d.reasoningContent);
  if (r) s.add(r.text, ['delta', 'reasoningContent', 'text'], 'assistant', 'reasoning', ch);
}

export const bedrockConverseCodec: ContentCodec = {
  format: 'bedrock-converse',
  request: (json) => converseRequest(json).list,
  response(json) {
    const s = new Segments();
    converseBlocks(s, obj(obj(json.output)?.message)?.content, ['output', 'message', 'content'], 'assistant');
    return s.list;
  },
  event(payload, name) {
    const s = new Segments();
    converseDelta(s, payload, name);
    return s.list;
  },
};

/** Amazon Nova on InvokeModel: Converse-like blocks; stream chunks are `{contentBlockDelta: {...}}`. */
const novaCodec: ContentCodec = {
  format: 'bedrock-invoke-nova',
  request: (json) => converseRequest(json).list,
  response: bedrockConverseCodec.response,
  event(payload) {
    const s = new Segments();
    const d = obj(payload.contentBlockDelta);
    if (d) {
      converseDelta(s, d, 'contentBlockDelta');
      return s.list.map((x) => ({ ...x, path: ['contentBlockDelta', ...x.path], id: ['contentBlockDelta', ...x.path].join('.') }));
    }
    return s.list;
  },
};

/** A family with a prompt string in, one text field out (and the same field in each stream chunk). */
function promptCodec(format: string, input: readonly JsonPath[], output: (json: JsonObject) => JsonPath[]): ContentCodec {
  const at = (json: JsonObject, path: JsonPath): unknown => path.reduce<unknown>((n, k) => (n === null || typeof n !== 'object' ? undefined : (n as Record<string | number, unknown>)[k]), json);
  return {
    format,
    request(json) {
      const s = new Segments();
      for (const p of input) s.add(at(json, p), p, 'user', 'text');
      return s.list;
    },
    response(json) {
      const s = new Segments();
      for (const p of output(json)) s.add(at(json, p), p, 'assistant', 'text');
      return s.list;
    },
    event(payload) {
      const s = new Segments();
      output(payload).forEach((p, i) => s.add(at(payload, p), p, 'assistant', 'text', `out.${i}`));
      return s.list;
    },
  };
}

const titanCodec = promptCodec('bedrock-invoke-titan', [['inputText']], (j) => (Array.isArray(j.results) ? j.results.map((_, i) => ['results', i, 'outputText']) : [['outputText']]));
const llamaCodec = promptCodec('bedrock-invoke-llama', [['prompt']], () => [['generation']]);
const mistralPromptCodec = promptCodec('bedrock-invoke-mistral', [['prompt']], (j) => arr(j.outputs).map((_, i) => ['outputs', i, 'text']));
const cohereCodec: ContentCodec = (() => {
  const base = promptCodec('bedrock-invoke-cohere', [['message']], () => [['text']]);
  return {
    ...base,
    request(json) {
      const s = new Segments();
      s.add(json.message, ['message'], 'user', 'text');
      s.add(json.preamble, ['preamble'], 'system', 'text');
      arr(json.chat_history).forEach((m, i) => s.add(obj(m)?.message, ['chat_history', i, 'message'], typeof obj(m)?.role === 'string' ? String(obj(m)!.role).toLowerCase() : 'user', 'text'));
      arr(json.documents).forEach((d, i) => s.walk(d, ['documents', i], 'user', 'text'));
      return s.list;
    },
  };
})();

/** The InvokeModel family of a model ID (vendor prefix after any inference-profile prefix), or undefined. */
export function invokeFamily(model: string | undefined): ContentCodec | undefined {
  if (model === undefined) return undefined;
  if (model.startsWith('anthropic.')) return anthropicMessagesCodec;
  if (model.startsWith('amazon.nova')) return novaCodec;
  if (model.startsWith('amazon.titan-text') || model.startsWith('amazon.titan-tg1')) return titanCodec;
  if (model.startsWith('meta.llama')) return llamaCodec;
  if (model.startsWith('mistral.')) return mistralPromptCodec;
  if (model.startsWith('cohere.command-r')) return cohereCodec;
  return undefined;
}

/** InvokeModel with the family's codec; stream `chunk` events are unwrapped from base64. */
export function bedrockInvokeCodec(family: ContentCodec): ContentCodec {
  return {
    format: `bedrock-invoke/${family.format}`,
    request: (json) => family.request(json),
    response: (json) => family.response(json),
    event: (payload, name) => family.event(payload, typeof payload.type === 'string' ? payload.type : name),
    decodeEvent(payload) {
      if (typeof payload.bytes !== 'string') return undefined;
      let inner: unknown;
      try {
        inner = JSON.parse(Buffer.from(payload.bytes, 'base64').toString('utf8'));
      } catch {
        return undefined;
      }
      const o = obj(inner);
      if (!o) return undefined;
      return { inner: o, wrap: (next) => ({ ...payload, bytes: Buffer.from(JSON.stringify(next), 'utf8').toString('base64') }) };
    },
  };
}
