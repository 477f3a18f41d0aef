import { arr, obj, Segments, type ContentCodec, type JsonPath } from './content.js';

// Anthropic's Messages format (api.anthropic.com, Claude on Vertex AI and in Bedrock InvokeModel bodies). Text,
// tool_use inputs (every string inside), tool_result contents and plain-text documents are segments; images,
// base64 documents and thinking signatures are not.

function blocks(s: Segments, content: unknown, path: JsonPath, role: string): void {
  if (typeof content === 'string') return s.add(content, path, role, 'text');
  arr(content).forEach((b, i) => {
    const block = obj(b);
    if (!block) return;
    const at = [...path, i];
    switch (block.type) {
      case 'text':
        s.add(block.text, [...at, 'text'], role, 'text');
        break;
      case 'tool_use':
      case 'server_tool_use':
        s.walk(block.input, [...at, 'input'], role, 'tool_arguments');
        break;
      case 'tool_result':
        if (typeof block.content === 'string') s.add(block.content, [...at, 'content'], 'tool', 'tool_result');
        else arr(block.content).forEach((c, j) => {
          const inner = obj(c);
          if (inner?.type === 'text') s.add(inner.text, [...at, 'content', j, 'text'], 'tool', 'tool_result');
        });
        break;
      case 'document': {
        const src = obj(block.source);
        if (src?.type === 'text') s.add(src.data, [...at, 'source', 'data'], role, 'text');
        break;
      }
      case 'thinking':
        s.add(block.thinking, [...at, 'thinking'], role, 'reasoning');
        break;
    }
  });
}

export const anthropicMessagesCodec: ContentCodec = {
  format: 'anthropic-messages',
  request(json) {
    const s = new Segments();
    blocks(s, json.system, ['system'], 'system');
    arr(json.messages).forEach((m, i) => {
      const msg = obj(m);
      if (msg) blocks(s, msg.content, ['messages', i, 'content'], typeof msg.role === 'string' ? msg.role : 'user');
    });
    // Legacy Text Completions (`/v1/complete`, and Claude 2 bodies on Bedrock)
    s.add(json.prompt, ['prompt'], 'user', 'text');
    return s.list;
  },
  response(json) {
    const s = new Segments();
    blocks(s, json.content, ['content'], 'assistant');
    s.add(json.completion, ['completion'], 'assistant', 'text');
    return s.list;
  },
  event(payload, name) {
    const s = new Segments();
    const type = typeof payload.type === 'string' ? payload.type : name;
    const index = typeof payload.index === 'number' ? payload.index : 0;
    if (type === 'content_block_delta') {
      const d = obj(payload.delta);
      if (d?.type === 'text_delta') s.add(d.text, ['delta', 'text'], 'assistant', 'text', `block.${index}`);
      else if (d?.type === 'input_json_delta') s.addJson(d.partial_json, ['delta', 'partial_json'], 'assistant', `block.${index}`);
      else if (d?.type === 'thinking_delta') s.add(d.thinking, ['delta', 'thinking'], 'assistant', 'reasoning', `block.${index}`);
    } else if (type === 'content_block_start') {
      const b = obj(payload.content_block);
      if (b?.type === 'text') s.add(b.text, ['content_block', 'text'], 'assistant', 'text');
    } else if (type === 'completion') {
      s.add(payload.completion, ['completion'], 'assistant', 'text', 'completion');
    }
    return s.list;
  },
};
