// type: pii: redact / block / log in requests, restore in JSON and streamed responses at every split.
import { brotliCompressSync, deflateRawSync, deflateSync, gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { MAX_DECODED_BODY } from '../../../../sidecar/pipeline/filters/request-body.js';
import { exchange, metric, respond, runnerFor, runRequest } from '../harness.js';
import type { Exchange } from '../../../../sidecar/pipeline/index.js';
import { MAX_LOGGED_TEXT } from '../../../../sidecar/pipeline/filters/log-text.js';
import { formatIssues, validatePolicy } from '../../../../shared/policy/validate.js';
import { JSON_H, SSE_H, ES_H, decodeEventStream, eventStreamBody, filterSetup, openAiStreamText, prng, randomChunks, send, sseBody } from './support.js';

const CHAT = '/v1/chat/completions';
const EMAIL = 'ada.lovelace@example.com';
const CARD = '4111 1111 1111 1111';
const redact = { type: 'pii', action: 'redact', restore: true, name: 'pii' };

describe('pii redact in requests', () => {
  it('replaces values with typed placeholders, the same value with the same one, and the provider never sees them', async () => {
    const s = filterSetup([redact]);
    const body = {
      model: 'gpt-4o',
      messages: [
        { role: 'system', content: `Support for ${EMAIL}` },
        { role: 'user', content: [{ type: 'text', text: `I am ${EMAIL}, card ${CARD}, call +49 30 1234567` }, { type: 'image_url', image_url: { url: 'data:image/png;base64,QUtJQUlPU0ZPRE5ON0VYQU1QTEU=' } }] },
        { role: 'assistant', content: null, tool_calls: [{ id: 'call_ada.lovelace@example.com', type: 'function', function: { name: 'lookup', arguments: JSON.stringify({ email: EMAIL }) } }] },
        { role: 'tool', tool_call_id: 'call_1', content: `found ${EMAIL} at 10.0.0.12` },
      ],
    };
    const { verdict, sent, ex } = await send(s, 'api.openai.com', CHAT, body);
    expect(verdict).toEqual({ action: 'continue' });
    const j = JSON.parse(sent) as typeof body;
    expect(j.messages[0]!.content).toBe('Support for [EMAIL_1]');
    expect((j.messages[1]!.content as { text?: string }[])[0]!.text).toBe('I am [EMAIL_1], card [CREDIT_CARD_1], call [PHONE_1]');
    // not text: ids and base64 are left alone, and the structure is the same
    expect((j.messages[1]!.content as { image_url?: { url: string } }[])[1]).toEqual((body.messages[1]!.content as unknown[])[1]);
    expect(j.messages[2]!.tool_calls![0]!.id).toBe('call_ada.lovelace@example.com');
    expect(JSON.parse(j.messages[2]!.tool_calls![0]!.function.arguments)).toEqual({ email: '[EMAIL_1]' });
    expect(j.messages[3]!.content).toBe('found [EMAIL_1] at [IP_ADDRESS_1]');
    expect(Object.keys(j)).toEqual(Object.keys(body));
    expect(sent.replace('call_ada.lovelace@example.com', '')).not.toContain(EMAIL);
    expect(sent).not.toContain('4111');
    expect(ex.actions).toContainEqual({ processor: 'pii', type: 'pii', phase: 'transform', action: 'redact', found: { email: 4, 'credit-card': 1, phone: 1, 'ip-address': 1 } });
    expect(JSON.stringify(ex.actions)).not.toContain('ada');
    expect(await metric(s.registry, 'aigress_filter_actions_total', { filter: 'pii', action: 'redact', phase: 'request' })).toBe(1);
  });

  it('never issues a placeholder the app already wrote itself', async () => {
    const s = filterSetup([redact]);
    const { sent } = await send(s, 'api.openai.com', CHAT, { model: 'gpt-4o', messages: [{ role: 'user', content: `literal [EMAIL_1] and ${EMAIL}` }] });
    expect(JSON.parse(sent).messages[0].content).toBe('literal [EMAIL_1] and [EMAIL_2]');
  });

  it('keeps each provider’s request shape and reads only its texts', async () => {
    const s = filterSetup([{ type: 'pii', action: 'redact', detect: ['email'] }], { providers: ['anthropic', 'gemini', 'bedrock', 'openai'] });
    const anthropic = {
      model: 'claude-sonnet-4-5', max_tokens: 10, system: [{ type: 'text', text: `ops ${EMAIL}` }],
      messages: [{ role: 'user', content: [{ type: 'text', text: EMAIL }, { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'YWRhQGV4YW1wbGUuY29t' } }, { type: 'tool_result', tool_use_id: 'toolu_1', content: [{ type: 'text', text: `r ${EMAIL}` }] }] },
        { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_2', name: 'send', input: { to: EMAIL, n: 3 } }] }],
    };
    const a = JSON.parse((await send(s, 'api.anthropic.com', '/v1/messages', anthropic)).sent);
    expect(a.system[0].text).toBe('ops [EMAIL_1]');
    expect(a.messages[0].content[0].text).toBe('[EMAIL_1]');
    expect(a.messages[0].content[1]).toEqual(anthropic.messages[0]!.content[1]);
    expect(a.messages[0].content[2].content[0].text).toBe('r [EMAIL_1]');
    expect(a.messages[1].content[0].input).toEqual({ to: '[EMAIL_1]', n: 3 });

    const gemini = {
      systemInstruction: { parts: [{ text: `sys ${EMAIL}` }] },
      contents: [{ role: 'user', parts: [{ text: EMAIL }, { inlineData: { mimeType: 'image/png', data: 'YWRh' } }] }, { role: 'model', parts: [{ functionCall: { name: 'f', args: { to: EMAIL } } }] }, { role: 'user', parts: [{ functionResponse: { name: 'f', response: { ok: `sent to ${EMAIL}` } } }] }],
    };
    const g = JSON.parse((await send(s, 'generativelanguage.googleapis.com', '/v1beta/models/gemini-2.0-flash:generateContent', gemini)).sent);
    expect(g.systemInstruction.parts[0].text).toBe('sys [EMAIL_1]');
    expect(g.contents[0].parts).toEqual([{ text: '[EMAIL_1]' }, gemini.contents[0]!.parts[1]]);
    expect(g.contents[1].parts[0].functionCall.args.to).toBe('[EMAIL_1]');
    expect(g.contents[2].parts[0].functionResponse.response.ok).toBe('sent to [EMAIL_1]');

    const converse = {
      system: [{ text: `sys ${EMAIL}` }],
      messages: [{ role: 'user', content: [{ text: EMAIL }, { image: { format: 'png', source: { bytes: 'YWRh' } } }, { toolResult: { toolUseId: 't1', content: [{ text: EMAIL }, { json: { mail: EMAIL } }] } }] }],
    };
    const host = 'bedrock-runtime.eu-central-1.amazonaws.com';
    const c = JSON.parse((await send(s, host, '/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse', converse)).sent);
    expect(c.system[0].text).toBe('sys [EMAIL_1]');
    expect(c.messages[0].content[1]).toEqual(converse.messages[0]!.content[1]);
    expect(c.messages[0].content[2].toolResult.content).toEqual([{ text: '[EMAIL_1]' }, { json: { mail: '[EMAIL_1]' } }]);

    const invoke = { anthropic_version: 'bedrock-2023-05-31', max_tokens: 5, messages: [{ role: 'user', content: `hi ${EMAIL}` }] };
    const i = JSON.parse((await send(s, host, '/model/anthropic.claude-3-haiku-20240307-v1%3A0/invoke', invoke)).sent);
    expect(i).toEqual({ ...invoke, messages: [{ role: 'user', content: 'hi [EMAIL_1]' }] });

    const responses = { model: 'gpt-4o', instructions: `be nice to ${EMAIL}`, input: [{ role: 'user', content: [{ type: 'input_text', text: EMAIL }, { type: 'input_image', image_url: 'data:image/png;base64,YWRh' }] }, { type: 'function_call_output', call_id: 'c', output: EMAIL }] };
    const r = JSON.parse((await send(s, 'api.openai.com', '/v1/responses', responses)).sent);
    expect(r.instructions).toBe('be nice to [EMAIL_1]');
    expect(r.input[0].content).toEqual([{ type: 'input_text', text: '[EMAIL_1]' }, responses.input[0]!.content![1]]);
    expect(r.input[1].output).toBe('[EMAIL_1]');
  });

  it('a Bedrock request the app signed is refused rather than forwarded with a broken signature', async () => {
    const s = filterSetup([redact], { providers: ['bedrock'] });
    const host = 'bedrock-runtime.us-east-1.amazonaws.com';
    const body = { messages: [{ role: 'user', content: [{ text: EMAIL }] }] };
    const signed = { authorization: 'AWS4-HMAC-SHA256 Credential=AKIA/20260101/us-east-1/bedrock/aws4_request, SignedHeaders=host, Signature=abc' };
    const r = await send(s, host, '/model/amazon.nova-lite-v1%3A0/converse', body, signed);
    expect(r.verdict).toMatchObject({ action: 'deny', status: 403, reason: 'signed_body_rewrite' });
    expect((r.verdict as { message: string }).message).toMatch(/signed it with SigV4.*would break the signature/);
    // nothing to rewrite: the signed request goes on unchanged
    const clean = await send(s, host, '/model/amazon.nova-lite-v1%3A0/converse', { messages: [{ role: 'user', content: [{ text: 'hello' }] }] }, signed);
    expect(clean.verdict).toEqual({ action: 'continue' });
    expect(clean.ex.request.body.changed).toBe(false);
  });
});

describe('pii block and log', () => {
  it('block answers 403 in the provider’s shape naming the filter and the kind, never the value', async () => {
    const s = filterSetup([{ type: 'pii', name: 'no-secrets', detect: ['secret'], action: 'block' }], { providers: ['anthropic', 'openai'] });
    const key = 'AKIAIOSFODNN7EXAMPLE';
    const { verdict } = await send(s, 'api.anthropic.com', '/v1/messages', { model: 'claude-x', messages: [{ role: 'user', content: `my key is ${key}` }] });
    expect(verdict).toMatchObject({ action: 'deny', status: 403, kind: 'policy', reason: 'filter_blocked' });
    const msg = (verdict as { message: string }).message;
    expect(msg).toContain('no-secrets');
    expect(msg).toContain('secret (1)');
    expect(msg).not.toContain(key);
    expect(await metric(s.registry, 'aigress_filter_actions_total', { filter: 'no-secrets', action: 'block' })).toBe(1);
    const fine = await send(s, 'api.openai.com', CHAT, { model: 'gpt-4o', messages: [{ role: 'user', content: 'keys go in a vault' }] });
    expect(fine.verdict).toEqual({ action: 'continue' });
  });

  it('log counts by kind and changes nothing', async () => {
    const s = filterSetup([{ type: 'pii', action: 'log', name: 'watch' }]);
    const body = { model: 'gpt-4o', messages: [{ role: 'user', content: `${EMAIL} and 123-45-6789` }] };
    const { sent, ex } = await send(s, 'api.openai.com', CHAT, body);
    expect(JSON.parse(sent)).toEqual(body);
    expect(ex.request.body.changed).toBe(false);
    expect(ex.actions).toContainEqual(expect.objectContaining({ processor: 'watch', action: 'log', found: { email: 1, 'us-ssn': 1 } }));
  });

  it('audit mode changes nothing: a redaction is recorded as would-redact', async () => {
    const s = filterSetup([redact], { mode: 'audit' });
    const body = { model: 'gpt-4o', messages: [{ role: 'user', content: EMAIL }] };
    const { sent, ex } = await send(s, 'api.openai.com', CHAT, body);
    expect(JSON.parse(sent)).toEqual(body);
    expect(ex.actions).toContainEqual(expect.objectContaining({ action: 'would-redact', found: { email: 1 } }));
  });
});

describe('restore', () => {
  const body = { model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: `Write to ${EMAIL} about card ${CARD}` }] };

  it('restores placeholders in a JSON response, tool-call arguments included (JSON-escaped)', async () => {
    const s = filterSetup([redact]);
    const { ex } = await send(s, 'api.openai.com', CHAT, { ...body, stream: false, messages: [{ role: 'user', content: `a "quoted" <${EMAIL}>` }] });
    const res = { id: 'x', choices: [{ index: 0, message: { role: 'assistant', content: 'Mailed [EMAIL_1].', tool_calls: [{ id: 't', type: 'function', function: { name: 'send', arguments: '{"to":"[EMAIL_1]"}' } }] } }], usage: { prompt_tokens: 1, completion_tokens: 2 } };
    const got = await respond(s.pipeline, ex, 200, JSON_H, [Buffer.from(JSON.stringify(res))]);
    const j = JSON.parse(got.body.toString());
    expect(j.choices[0].message.content).toBe(`Mailed ${EMAIL}.`);
    expect(JSON.parse(j.choices[0].message.tool_calls[0].function.arguments)).toEqual({ to: EMAIL });
    expect(j.usage).toEqual(res.usage);
    expect(ex.actions).toContainEqual(expect.objectContaining({ action: 'restore', found: { placeholders: 2 } }));
  });

  const chunk = (content: string) => ({ id: 'c', object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content } }] });
  const stream = sseBody([chunk('Sure, '), chunk('I wrote to [EMA'), chunk('IL_1] and charged [CRE'), chunk('DIT_CARD'), chunk('_1'), chunk(']. Bye [EMAIL_1'), { data: { id: 'c', choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] } }, '[DONE]']);
  const expected = `Sure, I wrote to ${EMAIL} and charged ${CARD}. Bye [EMAIL_1`;

  it('restores a placeholder split across SSE events, at every byte offset of the stream', async () => {
    const s = filterSetup([redact]);
    for (let cut = 0; cut <= stream.length; cut++) {
      const { ex } = await send(s, 'api.openai.com', CHAT, body);
      const got = await respond(s.pipeline, ex, 200, SSE_H, [stream.subarray(0, cut), stream.subarray(cut)]);
      const text = openAiStreamText(got.body);
      expect(text, `cut at ${cut}`).toBe(expected);
      expect(got.body.toString().endsWith('data: [DONE]\n\n'), `cut at ${cut}`).toBe(true);
      // the finish chunk comes after every text
      expect(got.body.toString().lastIndexOf('finish_reason')).toBeGreaterThan(got.body.toString().lastIndexOf('[EMAIL_1'));
    }
  });

  it('restores at every byte offset when multi-byte UTF-8 text surrounds a split placeholder (cuts inside characters)', async () => {
    const s = filterSetup([redact]);
    const utf8 = sseBody([chunk('Grüße an [EMA'), chunk('IL_1] 😀 — ça'), chunk(' va, 東京 [CREDIT_'), chunk('CARD_1]€'), '[DONE]']);
    for (let cut = 0; cut <= utf8.length; cut++) {
      const { ex } = await send(s, 'api.openai.com', CHAT, body);
      const got = await respond(s.pipeline, ex, 200, SSE_H, [utf8.subarray(0, cut), utf8.subarray(cut)]);
      expect(openAiStreamText(got.body), `cut at ${cut}`).toBe(`Grüße an ${EMAIL} 😀 — ça va, 東京 ${CARD}€`);
    }
  });

  it('and in random chunkings', async () => {
    const s = filterSetup([redact]);
    const rnd = prng(9);
    for (let i = 0; i < 200; i++) {
      const { ex } = await send(s, 'api.openai.com', CHAT, body);
      const got = await respond(s.pipeline, ex, 200, SSE_H, randomChunks(stream, rnd));
      expect(openAiStreamText(got.body)).toBe(expected);
    }
  });

  it('holds back at most a placeholder’s length: text that cannot start one is sent at once', async () => {
    const s = filterSetup([redact]);
    const { ex } = await send(s, 'api.openai.com', CHAT, body);
    const got = await respond(s.pipeline, ex, 200, SSE_H, [sseBody([chunk('plain [not a placeholder] ok [EMA'), chunk('IL_1]')])]);
    const first = got.body.toString().split('\n\n')[0]!;
    expect(JSON.parse(first.slice(6)).choices[0].delta.content).toBe('plain [not a placeholder] ok ');
    expect(openAiStreamText(got.body)).toBe(`plain [not a placeholder] ok ${EMAIL}`);
  });

  it('a request with nothing redacted leaves the stream byte for byte', async () => {
    const s = filterSetup([redact]);
    const { ex } = await send(s, 'api.openai.com', CHAT, { ...body, messages: [{ role: 'user', content: 'hello' }] });
    const got = await respond(s.pipeline, ex, 200, SSE_H, [stream]);
    expect(got.body.equals(stream)).toBe(true);
  });

  it('Anthropic streams: text and tool input deltas, split placeholders restored', async () => {
    const s = filterSetup([redact], { providers: ['anthropic'] });
    const { ex, sent } = await send(s, 'api.anthropic.com', '/v1/messages', { model: 'claude-x', max_tokens: 9, stream: true, messages: [{ role: 'user', content: `mail ${EMAIL}` }] });
    expect(sent).not.toContain(EMAIL);
    const ev = (event: string, data: unknown) => ({ event, data: { type: event, ...(data as object) } });
    const up = sseBody([
      ev('message_start', { message: { id: 'm', content: [], usage: { input_tokens: 3, output_tokens: 1 } } }),
      ev('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }),
      ev('ping', {}),
      ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text: 'To [EM' } }),
      ev('ping', {}),
      ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text: 'AIL_1' } }),
      ev('content_block_stop', { index: 0 }),
      ev('content_block_start', { index: 1, content_block: { type: 'tool_use', id: 't', name: 'send', input: {} } }),
      ev('content_block_delta', { index: 1, delta: { type: 'input_json_delta', partial_json: '{"to": "[EMAIL' } }),
      ev('content_block_delta', { index: 1, delta: { type: 'input_json_delta', partial_json: '_1]"}' } }),
      ev('content_block_stop', { index: 1 }),
      ev('message_delta', { delta: { stop_reason: 'tool_use' }, usage: { output_tokens: 9 } }),
      ev('message_stop', {}),
    ]);
    const rnd = prng(3);
    for (let i = 0; i < 50; i++) {
      const { ex: e2 } = i === 0 ? { ex } : await send(s, 'api.anthropic.com', '/v1/messages', { model: 'claude-x', max_tokens: 9, stream: true, messages: [{ role: 'user', content: `mail ${EMAIL}` }] });
      const got = await respond(s.pipeline, e2, 200, SSE_H, randomChunks(up, rnd));
      const events = got.body.toString().split('\n\n').filter(Boolean).map((b) => JSON.parse(b.split('\n').find((l) => l.startsWith('data: '))!.slice(6)) as { type: string; index?: number; delta?: { text?: string; partial_json?: string } });
      const text = events.filter((e) => e.index === 0 && e.type === 'content_block_delta').map((e) => e.delta!.text).join('');
      const json = events.filter((e) => e.index === 1 && e.type === 'content_block_delta').map((e) => e.delta!.partial_json).join('');
      expect(text).toBe('To [EMAIL_1'); // not a whole placeholder: left as the model wrote it
      expect(JSON.parse(json)).toEqual({ to: EMAIL });
      // each block's deltas come before its stop
      const stop0 = events.findIndex((e) => e.type === 'content_block_stop' && e.index === 0);
      expect(events.slice(stop0).some((e) => e.type === 'content_block_delta' && e.index === 0)).toBe(false);
    }
  });

  it('Bedrock ConverseStream (AWS event stream): restored at every split, frames re-encoded with valid CRCs', async () => {
    const s = filterSetup([redact], { providers: ['bedrock'] });
    const host = 'bedrock-runtime.eu-central-1.amazonaws.com';
    const path = '/model/eu.anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream';
    const req = { messages: [{ role: 'user', content: [{ text: `mail ${EMAIL}` }] }] };
    const up = eventStreamBody([
      { type: 'messageStart', data: { role: 'assistant' } },
      { type: 'contentBlockDelta', data: { contentBlockIndex: 0, delta: { text: 'Sent to [EMAI' } } },
      { type: 'contentBlockDelta', data: { contentBlockIndex: 0, delta: { text: 'L_1]' } } },
      { type: 'contentBlockStop', data: { contentBlockIndex: 0 } },
      { type: 'messageStop', data: { stopReason: 'end_turn' } },
      { type: 'metadata', data: { usage: { inputTokens: 3, outputTokens: 4, totalTokens: 7 } } },
    ]);
    for (let cut = 0; cut <= up.length; cut += 7) {
      const { ex, sent } = await send(s, host, path, req);
      expect(sent).not.toContain(EMAIL);
      const got = await respond(s.pipeline, ex, 200, ES_H, [up.subarray(0, cut), up.subarray(cut)]);
      const evs = decodeEventStream(got.body);
      const text = evs.filter((e) => e.type === 'contentBlockDelta').map((e) => (e.data as { delta: { text: string } }).delta.text).join('');
      expect(text, `cut ${cut}`).toBe(`Sent to ${EMAIL}`);
      expect(evs.map((e) => e.type)).toEqual(['messageStart', 'contentBlockDelta', 'contentBlockDelta', 'contentBlockStop', 'messageStop', 'metadata']);
    }
  });

  it('Bedrock InvokeModelWithResponseStream: chunks unwrapped from base64 and wrapped again', async () => {
    const s = filterSetup([redact], { providers: ['bedrock'] });
    const host = 'bedrock-runtime.us-east-1.amazonaws.com';
    const path = '/model/anthropic.claude-3-haiku-20240307-v1%3A0/invoke-with-response-stream';
    const { ex } = await send(s, host, path, { anthropic_version: 'bedrock-2023-05-31', max_tokens: 5, messages: [{ role: 'user', content: EMAIL }] });
    const b64 = (o: unknown) => ({ bytes: Buffer.from(JSON.stringify(o)).toString('base64') });
    const up = eventStreamBody([
      { type: 'chunk', data: b64({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'hi [EMAIL' } }) },
      { type: 'chunk', data: b64({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: '_1]!' } }) },
      { type: 'chunk', data: b64({ type: 'message_stop', 'amazon-bedrock-invocationMetrics': { inputTokenCount: 1, outputTokenCount: 2 } }) },
    ]);
    const got = await respond(s.pipeline, ex, 200, ES_H, [up]);
    const inner = decodeEventStream(got.body).map((e) => JSON.parse(Buffer.from((e.data as { bytes: string }).bytes, 'base64').toString()) as { delta?: { text: string } });
    expect(inner.map((x) => x.delta?.text ?? '').join('')).toBe(`hi ${EMAIL}!`);
  });

  it('Gemini SSE and the JSON-array form of streamGenerateContent', async () => {
    const s = filterSetup([redact], { providers: ['gemini'] });
    const req = { contents: [{ role: 'user', parts: [{ text: EMAIL }] }] };
    const cand = (text: string) => ({ candidates: [{ index: 0, content: { role: 'model', parts: [{ text }] } }] });
    const { ex } = await send(s, 'generativelanguage.googleapis.com', '/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse', req);
    const got = await respond(s.pipeline, ex, 200, SSE_H, [sseBody([cand('to [EMA'), cand('IL_1] ok')])]);
    const text = got.body.toString().split('\n\n').filter(Boolean).map((b) => (JSON.parse(b.slice(6)) as ReturnType<typeof cand>).candidates[0]!.content.parts[0]!.text).join('');
    expect(text).toBe(`to ${EMAIL} ok`);
    const { ex: ex2 } = await send(s, 'generativelanguage.googleapis.com', '/v1beta/models/gemini-2.0-flash:streamGenerateContent', req);
    const arr = await respond(s.pipeline, ex2, 200, JSON_H, [Buffer.from(JSON.stringify([cand('to [EMAIL_1]'), cand('!')]))]);
    expect(JSON.parse(arr.body.toString())[0].candidates[0].content.parts[0].text).toBe(`to ${EMAIL}`);
  });
});

describe('response-phase pii', () => {
  it('blocks a stream whose output carries a secret before the secret reaches the app, ending it the provider’s way', async () => {
    const s = filterSetup([{ type: 'pii', name: 'out', detect: ['secret'], action: 'block', phase: 'response' }]);
    const { ex } = await runRequest(s.pipeline, exchange(s.p, 'api.openai.com', CHAT, { model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: 'hi' }] }));
    const chunk = (content: string) => ({ choices: [{ index: 0, delta: { content } }] });
    const got = await respond(s.pipeline, ex, 200, SSE_H, [sseBody([chunk('Here: AKIAIOSF'), chunk('ODNN7EXAMPLE done'), '[DONE]'])]);
    const text = got.body.toString();
    expect(text).not.toContain('AKIA');
    expect(text).toContain('"code":"aigress_policy"');
    expect(text).toContain('out (pii)');
    expect(got.aborted).toBe(true);
  });

  it('a PEM block or JWT far longer than the 256-character window is seen whole in a stream, at every chunking', async () => {
    const body64 = Array.from({ length: 26 }, (_, i) => Buffer.from(`line ${i} of a private key that goes on and on and on, past the window`).toString('base64').slice(0, 64)).join('\n');
    const pem = `-----BEGIN PRIVATE KEY-----\n${body64}\n-----END PRIVATE KEY-----`;
    const jwt = `eyJhbGciOiJIUzI1NiJ9.eyJ${'a'.repeat(600)}.${'s'.repeat(43)}`;
    expect(pem.length).toBeGreaterThan(1500);
    const chunk = (content: string) => ({ id: 'c', choices: [{ index: 0, delta: { content } }] });
    const rnd = prng(5);
    for (const [secret, label] of [[pem, 'pem'], [jwt, 'jwt']] as const) {
      const text = `Here it is:\n${secret}\nKeep it safe.`;
      for (let round = 0; round < 20; round++) {
        // the model's deltas: 1 to 8 characters each
        const deltas: string[] = [];
        for (let i = 0; i < text.length; ) {
          const n = 1 + Math.floor(rnd() * 8);
          deltas.push(text.slice(i, i + n));
          i += n;
        }
        const stream = sseBody([...deltas.map(chunk), '[DONE]']);
        for (const action of ['redact', 'block'] as const) {
          const s = filterSetup([{ type: 'pii', name: 'out', detect: ['secret'], action, phase: 'response' }]);
          const { ex } = await runRequest(s.pipeline, exchange(s.p, 'api.openai.com', CHAT, { model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: 'hi' }] }));
          const got = await respond(s.pipeline, ex, 200, SSE_H, randomChunks(stream, rnd));
          const out = got.body.toString();
          // no 40-character piece of the secret's body reached the app
          for (let i = 30; i + 40 < secret.length; i += 97) expect(out, `${label} ${action} round ${round}`).not.toContain(secret.slice(i, i + 40).replace(/\n/g, '\\n'));
          if (action === 'redact') expect(openAiStreamText(got.body), `${label} round ${round}`).toBe('Here it is:\n[SECRET_1]\nKeep it safe.');
          else expect(out).toContain('out (pii)');
        }
      }
    }
  });

  it('a stream is redacted exactly as the whole text would be, at random deltas, while holding back only what may still grow', async () => {
    const words = ['Hello', 'world,', 'call', '+49 30 1234567', 'or', '(415) 555-2671.', 'Mail', 'grace@example.org', 'card', '4111 1111 1111 1111', 'IBAN', 'DE89 3704 0044 0532 0130 00', 'from', '10.0.0.12', 'SSN', '123-45-6789', 'key', 'AKIAIOSFODNN7EXAMPLE', 'order', '12345678901234', 'v1.2.3.4', '"private_key_id": "0123456789abcdef0123456789abcdef01234567"', 'fe80::1:2:3', 'and', 'sk-proj-abcdefghijklmnopqrstuvwxyz012345', '\n'];
    const rnd = prng(11);
    const chunk = (content: string) => ({ id: 'c', choices: [{ index: 0, delta: { content } }] });
    const s = filterSetup([{ type: 'pii', action: 'redact', phase: 'response' }]);
    const req = { model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: 'hi' }] };
    for (let round = 0; round < 60; round++) {
      const text = Array.from({ length: 30 }, () => words[Math.floor(rnd() * words.length)]).join(' ');
      const deltas: string[] = [];
      for (let i = 0; i < text.length; ) {
        const n = 1 + Math.floor(rnd() * 6);
        deltas.push(text.slice(i, i + n));
        i += n;
      }
      const whole = await send(s, 'api.openai.com', CHAT, { ...req, stream: false });
      const json = await respond(s.pipeline, whole.ex, 200, JSON_H, [Buffer.from(JSON.stringify({ choices: [{ index: 0, message: { role: 'assistant', content: text } }] }))]);
      const want = JSON.parse(json.body.toString()).choices[0].message.content as string;
      const streamed = await send(s, 'api.openai.com', CHAT, req);
      const got = await respond(s.pipeline, streamed.ex, 200, SSE_H, [sseBody([...deltas.map(chunk), '[DONE]'])]);
      expect(openAiStreamText(got.body), `round ${round}: ${text}`).toBe(want);
    }
    // prose is held back by its last word only: the first event carries all but the word still being written
    const prose = await send(s, 'api.openai.com', CHAT, req);
    const got = await respond(s.pipeline, prose.ex, 200, SSE_H, [sseBody([chunk('The quarterly report is ready for the board to rev'), chunk('iew.'), '[DONE]'])]);
    expect(JSON.parse(got.body.toString().split('\n\n')[0]!.slice(6)).choices[0].delta.content).toBe('The quarterly report is ready for the board to ');
  });

  it('redacts new PII in a JSON response', async () => {
    const s = filterSetup([{ type: 'pii', detect: ['email'], action: 'redact', phase: 'response' }]);
    const { ex } = await runRequest(s.pipeline, exchange(s.p, 'api.openai.com', CHAT, { model: 'gpt-4o', messages: [{ role: 'user', content: 'who?' }] }));
    const got = await respond(s.pipeline, ex, 200, JSON_H, [Buffer.from(JSON.stringify({ choices: [{ index: 0, message: { role: 'assistant', content: 'write to grace@example.org' } }] }))]);
    expect(JSON.parse(got.body.toString()).choices[0].message.content).toBe('write to [EMAIL_1]');
  });
});

describe('phase both with restore', () => {
  const both = { type: 'pii', name: 'pii', detect: ['email'], action: 'redact', restore: true, phase: 'both' };
  const req = { model: 'gpt-4o', messages: [{ role: 'user', content: 'I am ada@example.com' }] };
  const want = 'Hi ada@example.com, write to [EMAIL_2]; I never saw [EMAIL_3]';
  const reply = 'Hi [EMAIL_1], write to grace@example.org; I never saw ada@example.com';

  it('restores only the request’s placeholders: PII new in the response stays redacted (JSON)', async () => {
    const s = filterSetup([both]);
    const { ex, sent } = await send(s, 'api.openai.com', CHAT, req);
    expect(JSON.parse(sent).messages[0].content).toBe('I am [EMAIL_1]');
    const got = await respond(s.pipeline, ex, 200, JSON_H, [Buffer.from(JSON.stringify({ choices: [{ index: 0, message: { role: 'assistant', content: reply } }] }))]);
    expect(JSON.parse(got.body.toString()).choices[0].message.content).toBe(want);
    expect(got.body.toString()).not.toContain('grace');
    expect(ex.actions).toContainEqual(expect.objectContaining({ processor: 'pii', phase: 'response', action: 'redact', found: { email: 2 } }));
    expect(ex.actions).toContainEqual(expect.objectContaining({ processor: 'pii', phase: 'response', action: 'restore', found: { placeholders: 1 } }));
  });

  it('and in a stream, at every split', async () => {
    const s = filterSetup([both]);
    const chunk = (content: string) => ({ id: 'c', choices: [{ index: 0, delta: { content } }] });
    const stream = sseBody([chunk(reply.slice(0, 7)), chunk(reply.slice(7, 30)), chunk(reply.slice(30)), '[DONE]']);
    for (let cut = 0; cut <= stream.length; cut += 3) {
      const { ex } = await send(s, 'api.openai.com', CHAT, { ...req, stream: true });
      const got = await respond(s.pipeline, ex, 200, SSE_H, [stream.subarray(0, cut), stream.subarray(cut)]);
      expect(openAiStreamText(got.body), `cut at ${cut}`).toBe(want);
    }
  });

  it('restore on a response-only filter is refused, naming the field', () => {
    const r = validatePolicy({ apiVersion: 'aigress.io/v1alpha1', kind: 'EgressPolicy', metadata: { name: 'p' }, spec: { filters: [{ type: 'pii', action: 'redact', restore: true, phase: 'response' }] } });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(formatIssues(r.issues)).toMatch(/filters\[0\]\.restore: restores what the request redacted: needs phase request or both/);
  });
});

describe('bodies a filter cannot read', () => {
  it('invalid UTF-8, not JSON: FailClosed → 400 in the provider’s shape; FailOpen → on, counted', async () => {
    const s = filterSetup([{ type: 'pii', name: 'pii', action: 'redact' }], { providers: ['anthropic'] });
    const bad = Buffer.concat([Buffer.from('{"model":"claude-x","messages":[{"role":"user","content":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}]}')]);
    for (const [body, headers, why] of [[bad, {}, 'not valid UTF-8'], [Buffer.from('model=claude'), {}, 'not a JSON object']] as const) {
      const { verdict } = await send(s, 'api.anthropic.com', '/v1/messages', body, headers);
      expect(verdict).toMatchObject({ action: 'deny', status: 400, kind: 'bad_request', reason: 'uninspectable_body' });
      expect((verdict as { message: string }).message).toContain(why);
    }
    const e = (await import('../../../../shared/providers/anthropic.js')).anthropicError('bad_request', 400, 'x');
    expect(JSON.parse(e.body)).toEqual({ type: 'error', error: { type: 'invalid_request_error', message: 'x' } });
    expect(await metric(s.registry, 'aigress_filter_failures_total', { filter: 'pii', mode: 'closed' })).toBe(2);
    const open = filterSetup([{ type: 'pii', action: 'redact', failureMode: 'FailOpen' }], { providers: ['anthropic'] });
    expect((await send(open, 'api.anthropic.com', '/v1/messages', bad)).verdict).toEqual({ action: 'continue' });
  });
});

describe('compressed request bodies', () => {
  const body = { model: 'gpt-4o', messages: [{ role: 'user', content: `mail ${EMAIL}, key AKIAIOSFODNN7EXAMPLE` }] };
  const raw = Buffer.from(JSON.stringify(body));
  const encodings: [string, Buffer][] = [
    ['gzip', gzipSync(raw)],
    ['deflate', deflateSync(raw)],
    ['deflate', deflateRawSync(raw)],
    ['br', brotliCompressSync(raw)],
    ['deflate, gzip', gzipSync(deflateSync(raw))],
  ];

  it('gzip, deflate, br (and lists of them) are decoded and inspected; a rewritten body goes upstream uncompressed', async () => {
    for (const [enc, bytes] of encodings) {
      const s = filterSetup([redact]);
      const { verdict, ex, sent } = await send(s, 'api.openai.com', CHAT, bytes, { 'content-encoding': enc });
      expect(verdict, enc).toEqual({ action: 'continue' });
      expect(ex.request.headers.has('content-encoding'), enc).toBe(false);
      expect(JSON.parse(sent).messages[0].content, enc).toBe('mail [EMAIL_1], key [SECRET_1]');
      expect(ex.request.headers.get('content-length')).toBe(String(Buffer.byteLength(sent)));
      // and restored on the way back
      const got = await respond(s.pipeline, ex, 200, JSON_H, [Buffer.from(JSON.stringify({ choices: [{ index: 0, message: { role: 'assistant', content: 'to [EMAIL_1]' } }] }))]);
      expect(JSON.parse(got.body.toString()).choices[0].message.content).toBe(`to ${EMAIL}`);
    }
  });

  it('a compressed body is what every filter reads and what goes upstream, decoded; one a filter blocks is blocked', async () => {
    // request-encoding (the first step) decoded it, so the provider gets exactly the bytes the filters judged
    const log = filterSetup([{ type: 'pii', action: 'log', name: 'watch' }]);
    const { ex, verdict, sent } = await send(log, 'api.openai.com', CHAT, encodings[0]![1], { 'content-encoding': 'gzip' });
    expect(verdict).toEqual({ action: 'continue' });
    expect(JSON.parse(sent)).toEqual(body);
    expect(ex.request.headers.has('content-encoding')).toBe(false);
    expect(ex.actions).toContainEqual(expect.objectContaining({ processor: 'watch', action: 'log', found: { email: 1, secret: 1 } }));
    for (const f of [{ type: 'pii', detect: ['secret'], action: 'block' }, { type: 'regex', pattern: 'AKIA[A-Z0-9]{16}', action: 'block' }]) {
      const s = filterSetup([f]);
      const r = await send(s, 'api.openai.com', CHAT, encodings[3]![1], { 'content-encoding': 'br' });
      expect(r.verdict, f.type).toMatchObject({ action: 'deny', status: 403, reason: 'filter_blocked' });
    }
    // a transform on a compressed body
    const t = filterSetup([{ type: 'transform', setBodyFields: [{ path: '$.user', value: 'u' }] }]);
    const tr = await send(t, 'api.openai.com', CHAT, encodings[0]![1], { 'content-encoding': 'gzip' });
    expect(JSON.parse(tr.sent)).toEqual({ ...body, user: 'u' });
    expect(tr.ex.request.headers.has('content-encoding')).toBe(false);
  });

  it('an unknown coding, a body that does not decode, or one that decodes too large: FailClosed → 400 naming why; FailOpen → unchanged', async () => {
    const bomb = gzipSync(Buffer.alloc(MAX_DECODED_BODY + 1024, 0x20));
    const cases: [Buffer, string, string][] = [
      [raw, 'zstd', 'content-encoding zstd is not one the proxy decodes'],
      [Buffer.from('not gzip at all'), 'gzip', 'content-encoding gzip does not decode'],
    ];
    // one that decodes past the body limit is refused before any filter, as a plain body that size is
    const big = await send(filterSetup([{ ...redact, failureMode: 'FailOpen' }]), 'api.openai.com', CHAT, bomb, { 'content-encoding': 'gzip' });
    expect(big.verdict).toMatchObject({ action: 'deny', status: 413, reason: 'body_too_large' });
    expect((big.verdict as { message: string }).message).toContain(`decodes to more than ${MAX_DECODED_BODY} bytes`);
    for (const [bytes, enc, why] of cases) {
      const s = filterSetup([redact]);
      const { verdict } = await send(s, 'api.openai.com', CHAT, bytes, { 'content-encoding': enc });
      expect(verdict, why).toMatchObject({ action: 'deny', status: 400, kind: 'bad_request', reason: 'uninspectable_body' });
      expect((verdict as { message: string }).message).toContain(why);
      const open = filterSetup([{ ...redact, failureMode: 'FailOpen' }]);
      const o = await send(open, 'api.openai.com', CHAT, bytes, { 'content-encoding': enc });
      expect(o.verdict).toEqual({ action: 'continue' });
      expect(o.ex.request.body.bytes().equals(bytes)).toBe(true);
      expect(o.ex.actions).toContainEqual(expect.objectContaining({ action: 'failed-open' }));
    }
  });
});

describe('logText: the prompt text in the log line, redacted', () => {
  const body = { model: 'gpt-4o', messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: `I am ${EMAIL}, card ${CARD}` }] };
  const end = async (s: ReturnType<typeof filterSetup>, ex: Exchange): Promise<void> => {
    await respond(s.pipeline, ex, 200, JSON_H, [Buffer.from(JSON.stringify({ choices: [{ index: 0, message: { role: 'assistant', content: 'ok' } }] }))]);
  };

  it('is off by default: no prompt text in the facts', async () => {
    const s = filterSetup([redact]);
    const { ex } = await send(s, 'api.openai.com', CHAT, body);
    await end(s, ex);
    expect(ex.facts.promptText).toBeUndefined();
    expect(JSON.stringify(ex.facts)).not.toContain('Be brief');
  });

  it('with logText, the texts as the provider got them, with the redactions applied, whatever the action or mode', async () => {
    for (const [filter, mode] of [[{ ...redact, logText: true }, 'enforce'], [{ ...redact, logText: true }, 'audit'], [{ type: 'pii', action: 'log', logText: true }, 'enforce']] as const) {
      const s = filterSetup([filter], { mode });
      const { ex, sent } = await send(s, 'api.openai.com', CHAT, body);
      await end(s, ex);
      const upstreamHasValues = sent.includes(EMAIL);
      expect(upstreamHasValues, `${filter.action} ${mode}`).toBe(filter.action !== 'redact' || mode === 'audit');
      expect(ex.facts.promptText, `${filter.action} ${mode}`).toBe('system: Be brief.\nuser: I am [EMAIL_1], card [CREDIT_CARD_1]');
    }
  });

  it('every logging filter redacts the same copy; a blocked request is logged redacted too; the copy is bounded', async () => {
    const s = filterSetup([{ type: 'pii', name: 'a', detect: ['email'], action: 'redact', logText: true }, { type: 'pii', name: 'b', detect: ['credit-card'], action: 'block', logText: true }]);
    const { ex, verdict } = await send(s, 'api.openai.com', CHAT, body);
    expect(verdict).toMatchObject({ action: 'deny', reason: 'filter_blocked' });
    await runnerFor(s.registry).end(ex, { complete: false, forwarded: false, status: 403, framingFailed: false });
    expect(ex.facts.promptText).toBe('system: Be brief.\nuser: I am [EMAIL_1], card [CREDIT_CARD_1]');
    const long = filterSetup([{ ...redact, logText: true }]);
    const big = await send(long, 'api.openai.com', CHAT, { model: 'gpt-4o', messages: [{ role: 'user', content: 'x'.repeat(MAX_LOGGED_TEXT * 2) }] });
    await end(long, big.ex);
    expect(String(big.ex.facts.promptText)).toHaveLength(MAX_LOGGED_TEXT + 1);
  });

  it('is refused on a response-only filter and when not a boolean, naming the field', () => {
    for (const [f, msg] of [[{ type: 'pii', phase: 'response', logText: true }, /logText: logs the request's text/], [{ type: 'pii', logText: 'yes' }, /logText: must be true or false/]] as const) {
      const r = validatePolicy({ apiVersion: 'aigress.io/v1alpha1', kind: 'EgressPolicy', metadata: { name: 'p' }, spec: { filters: [f] } });
      expect(r.ok).toBe(false);
      if (!r.ok) expect(formatIssues(r.issues)).toMatch(msg);
    }
  });
});

