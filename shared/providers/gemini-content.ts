import { arr, obj, Segments, type ContentCodec, type JsonPath } from './content.js';

// Google's GenerateContent format (the Gemini Developer API and Gemini on Vertex AI): `contents[].parts[]` and
// `systemInstruction.parts[]` in requests, `candidates[].content.parts[]` in responses and in each streamed
// chunk. Text parts, functionCall args and functionResponse responses (every string inside) are segments;
// inlineData (base64), fileData and thought signatures are not.

function parts(s: Segments, list: unknown, path: JsonPath, role: string, channel?: string): void {
  arr(list).forEach((p, i) => {
    const part = obj(p);
    if (!part) return;
    const at = [...path, i];
    if (typeof part.text === 'string') s.add(part.text, [...at, 'text'], role, part.thought === true ? 'reasoning' : 'text', channel && `${channel}${part.thought === true ? '.thought' : ''}`);
    const call = obj(part.functionCall);
    if (call) s.walk(call.args, [...at, 'functionCall', 'args'], role, 'tool_arguments');
    const res = obj(part.functionResponse);
    if (res) s.walk(res.response, [...at, 'functionResponse', 'response'], 'tool', 'tool_result');
  });
}

function candidates(s: Segments, json: Record<string, unknown>, stream: boolean): void {
  arr(json.candidates).forEach((c, i) => {
    const cand = obj(c);
    const n = typeof cand?.index === 'number' ? cand.index : i;
    parts(s, obj(cand?.content)?.parts, ['candidates', i, 'content', 'parts'], 'assistant', stream ? `candidate.${n}` : undefined);
  });
}

export const geminiCodec: ContentCodec = {
  format: 'gemini-generate-content',
  request(json) {
    const s = new Segments();
    parts(s, obj(json.systemInstruction)?.parts, ['systemInstruction', 'parts'], 'system');
    arr(json.contents).forEach((c, i) => {
      const content = obj(c);
      const role = content?.role === 'model' ? 'assistant' : typeof content?.role === 'string' ? content.role : 'user';
      parts(s, content?.parts, ['contents', i, 'parts'], role);
    });
    return s.list;
  },
  response(json) {
    const s = new Segments();
    candidates(s, json, false);
    return s.list;
  },
  event(payload) {
    const s = new Segments();
    candidates(s, payload, true);
    return s.list;
  },
};
