import { arr, indexKey, obj, Segments, type ContentCodec, type JsonPath, type TextSegment } from './content.js';
import type { JsonObject } from './request.js';

// OpenAI's wire formats (also spoken by Azure OpenAI, Mistral and the OpenAI-compatible endpoints of Gemini and
// Vertex AI): Chat Completions, Responses, Embeddings and legacy Completions. Image, audio and file parts are
// not text and are never segments; tool-call arguments are JSON-encoded text (kind tool_arguments).

function chatMessageParts(s: Segments, content: unknown, path: JsonPath, role: string, kind: TextSegment['kind']): void {
  if (typeof content === 'string') return s.add(content, path, role, kind);
  arr(content).forEach((part, i) => {
    const p = obj(part);
    if (!p) return;
    if (p.type === 'text') s.add(p.text, [...path, i, 'text'], role, kind);
    else if (p.type === 'refusal') s.add(p.refusal, [...path, i, 'refusal'], role, kind);
  });
}

function chatToolCalls(s: Segments, calls: unknown, path: JsonPath, role: string, channel?: (i: number, call: Record<string, unknown>) => string): void {
  arr(calls).forEach((c, i) => {
    const call = obj(c);
    const fn = obj(call?.function);
    if (call && fn) s.addJson(fn.arguments, [...path, i, 'function', 'arguments'], role, channel?.(i, call));
  });
}

export const openAiChatCodec: ContentCodec = {
  format: 'openai-chat',
  request(json) {
    const s = new Segments();
    arr(json.messages).forEach((m, i) => {
      const msg = obj(m);
      if (!msg) return;
      const role = typeof msg.role === 'string' ? msg.role : 'user';
      const kind = role === 'tool' || role === 'function' ? 'tool_result' : 'text';
      chatMessageParts(s, msg.content, ['messages', i, 'content'], role, kind);
      chatToolCalls(s, msg.tool_calls, ['messages', i, 'tool_calls'], role);
      const fc = obj(msg.function_call);
      if (fc) s.addJson(fc.arguments, ['messages', i, 'function_call', 'arguments'], role);
    });
    return s.list;
  },
  response(json) {
    const s = new Segments();
    arr(json.choices).forEach((c, i) => {
      const msg = obj(obj(c)?.message);
      if (!msg) return;
      s.add(msg.content, ['choices', i, 'message', 'content'], 'assistant', 'text');
      s.add(msg.refusal, ['choices', i, 'message', 'refusal'], 'assistant', 'text');
      chatToolCalls(s, msg.tool_calls, ['choices', i, 'message', 'tool_calls'], 'assistant');
    });
    return s.list;
  },
  event(payload) {
    const s = new Segments();
    arr(payload.choices).forEach((c, i) => {
      const choice = obj(c);
      const delta = obj(choice?.delta);
      if (!choice || !delta) return;
      const n = typeof choice.index === 'number' ? choice.index : i;
      s.add(delta.content, ['choices', i, 'delta', 'content'], 'assistant', 'text', `choice.${n}`);
      s.add(delta.refusal, ['choices', i, 'delta', 'refusal'], 'assistant', 'text', `choice.${n}.refusal`);
      chatToolCalls(s, delta.tool_calls, ['choices', i, 'delta', 'tool_calls'], 'assistant', (j, call) => `choice.${n}.tool.${typeof call.index === 'number' ? call.index : j}`);
    });
    return s.list;
  },
};

function responsesItems(s: Segments, items: readonly unknown[], path: JsonPath, defaultRole: string): void {
  items.forEach((it, i) => {
    const item = obj(it);
    if (!item) return;
    const type = item.type ?? 'message';
    const role = typeof item.role === 'string' ? item.role : defaultRole;
    if (type === 'message') {
      if (typeof item.content === 'string') s.add(item.content, [...path, i, 'content'], role, 'text');
      else {
        arr(item.content).forEach((part, j) => {
          const p = obj(part);
          if (!p) return;
          if (p.type === 'input_text' || p.type === 'output_text' || p.type === 'text') s.add(p.text, [...path, i, 'content', j, 'text'], role, 'text');
          else if (p.type === 'refusal') s.add(p.refusal, [...path, i, 'content', j, 'refusal'], role, 'text');
        });
      }
    } else if (type === 'function_call' || type === 'custom_tool_call') {
      if (item.arguments !== undefined) s.addJson(item.arguments, [...path, i, 'arguments'], 'assistant');
      else s.add(item.input, [...path, i, 'input'], 'assistant', 'tool_arguments');
    } else if (type === 'function_call_output' || type === 'custom_tool_call_output') {
      if (typeof item.output === 'string') s.add(item.output, [...path, i, 'output'], 'tool', 'tool_result');
      else arr(item.output).forEach((part, j) => s.add(obj(part)?.text, [...path, i, 'output', j, 'text'], 'tool', 'tool_result'));
    }
  });
}

function responsesResponse(s: Segments, r: JsonObject, path: JsonPath): void {
  responsesItems(s, arr(r.output), [...path, 'output'], 'assistant');
}

export const openAiResponsesCodec: ContentCodec = {
  format: 'openai-responses',
  request(json) {
    const s = new Segments();
    s.add(json.instructions, ['instructions'], 'system', 'text');
    if (typeof json.input === 'string') s.add(json.input, ['input'], 'user', 'text');
    else responsesItems(s, arr(json.input), ['input'], 'user');
    return s.list;
  },
  response(json) {
    const s = new Segments();
    responsesResponse(s, json, []);
    return s.list;
  },
  event(payload, name) {
    const s = new Segments();
    const type = typeof payload.type === 'string' ? payload.type : name;
    const at = `${indexKey(payload.output_index)}.${indexKey(payload.content_index)}`;
    switch (type) {
      case 'response.output_text.delta':
        s.add(payload.delta, ['delta'], 'assistant', 'text', `output.${at}`);
        break;
      case 'response.refusal.delta':
        s.add(payload.delta, ['delta'], 'assistant', 'text', `refusal.${at}`);
        break;
      case 'response.function_call_arguments.delta':
        s.addJson(payload.delta, ['delta'], 'assistant', `args.${indexKey(payload.output_index)}`);
        break;
      case 'response.output_text.done':
        s.add(payload.text, ['text'], 'assistant', 'text');
        break;
      case 'response.refusal.done':
        s.add(payload.refusal, ['refusal'], 'assistant', 'text');
        break;
      case 'response.function_call_arguments.done':
        s.addJson(payload.arguments, ['arguments'], 'assistant');
        break;
      case 'response.content_part.added':
      case 'response.content_part.done': {
        const part = obj(payload.part);
        if (part) s.add(part.text ?? part.refusal, ['part', part.text !== undefined ? 'text' : 'refusal'], 'assistant', 'text');
        break;
      }
      case 'response.output_item.added':
      case 'response.output_item.done':
        if (obj(payload.item)) responsesItems(s, [payload.item], [], 'assistant');
        // responsesItems indexes from the list it was given: drop that index from the paths
        return s.list.map((x) => ({ ...x, path: ['item', ...x.path.slice(1)], id: ['item', ...x.path.slice(1)].join('.') }));
      default: {
        const r = obj(payload.response);
        if (r) responsesResponse(s, r, ['response']);
      }
    }
    return s.list;
  },
};

export const openAiEmbeddingsCodec: ContentCodec = {
  format: 'openai-embeddings',
  request(json) {
    const s = new Segments();
    if (typeof json.input === 'string') s.add(json.input, ['input'], 'user', 'text');
    else arr(json.input).forEach((x, i) => s.add(x, ['input', i], 'user', 'text'));
    return s.list;
  },
  response: () => [],
  event: () => [],
};

export const openAiCompletionsCodec: ContentCodec = {
  format: 'openai-completions',
  request(json) {
    const s = new Segments();
    if (typeof json.prompt === 'string') s.add(json.prompt, ['prompt'], 'user', 'text');
    else arr(json.prompt).forEach((x, i) => s.add(x, ['prompt', i], 'user', 'text'));
    s.add(json.suffix, ['suffix'], 'user', 'text');
    return s.list;
  },
  response(json) {
    const s = new Segments();
    arr(json.choices).forEach((c, i) => s.add(obj(c)?.text, ['choices', i, 'text'], 'assistant', 'text'));
    return s.list;
  },
  event(payload) {
    const s = new Segments();
    arr(payload.choices).forEach((c, i) => {
      const ch = obj(c);
      s.add(ch?.text, ['choices', i, 'text'], 'assistant', 'text', `choice.${typeof ch?.index === 'number' ? ch.index : i}`);
    });
    return s.list;
  },
};

/** The codec of an OpenAI-shaped call, by operation. */
export function openAiCodec(operation: string): ContentCodec | undefined {
  switch (operation) {
    case 'chat':
      return openAiChatCodec;
    case 'responses':
    case 'count_tokens':
      return openAiResponsesCodec;
    case 'embeddings':
      return openAiEmbeddingsCodec;
    case 'text_completion':
      return openAiCompletionsCodec;
    default:
      return undefined;
  }
}
