import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { openai } from '../../../shared/providers/openai.js';
import { IncludeUsageStripper, injectIncludeUsage, removeNullMember } from '../../../shared/providers/openai-stream-usage.js';
import { parseJsonObject } from '../../../shared/providers/request.js';
import { chunkings, fixture, JSON_TYPE, readUsage, request, SSE, stableUsage } from './support.js';

const API = 'api.openai.com';
const d = (path: string, body: unknown = {}, host = API) => openai.describe(request(host, path, body), {});

describe('openai: describe', () => {
  it('tells operation, model, stream and region from host, path and body', () => {
    expect(d('/v1/chat/completions', { model: 'gpt-4o', messages: [] })).toMatchObject({
      operation: 'chat',
      model: 'gpt-4o',
      stream: false,
      region: 'us',
      reach: ['us'],
    });
    expect(d('/v1/chat/completions', { model: 'gpt-4o-mini', stream: true }, 'eu.api.openai.com')).toMatchObject({
      operation: 'chat',
      stream: true,
      region: 'eu',
      reach: ['eu'],
    });
    expect(d('/v1/responses', { model: 'o4-mini', input: 'hi', stream: true })).toMatchObject({ operation: 'responses', model: 'o4-mini', stream: true });
    expect(d('/v1/embeddings', { model: 'text-embedding-3-small', input: 'x' })).toMatchObject({ operation: 'embeddings' });
    expect(d('/v1/completions', { model: 'gpt-3.5-turbo-instruct', prompt: 'x' })).toMatchObject({ operation: 'text_completion' });
    expect(d('/v1/responses/input_tokens', { model: 'gpt-4.1', input: 'x' })).toMatchObject({ operation: 'count_tokens', model: 'gpt-4.1' });
  });

  it('keeps unknown paths as operation "unknown", with the body model when there is one', () => {
    expect(openai.describe(request(API, '/v1/models', '', 'GET'), {})).toMatchObject({ operation: 'unknown', stream: false });
    expect(openai.describe(request(API, '/v1/models', '', 'GET'), {}).model).toBeUndefined();
    expect(d('/v1/audio/speech', { model: 'tts-1', input: 'x' })).toMatchObject({ operation: 'unknown', model: 'tts-1' });
  });

  it('ignores the query string and collapses doubled slashes', () => {
    expect(d('//v1//chat/completions?x=1', { model: 'gpt-4o' })).toMatchObject({ operation: 'chat', model: 'gpt-4o' });
  });

  it('leaves the model absent when the body is not a JSON object', () => {
    for (const body of ['', 'model=gpt-4o', '[{"model":"gpt-4o"}]', '{"model":']) {
      expect(openai.describe(request(API, '/v1/chat/completions', body), {}).model).toBeUndefined();
    }
    expect(d('/v1/chat/completions', { model: 42 }).model).toBeUndefined();
  });
});

describe('openai: usage from JSON responses', () => {
  const chat = d('/v1/chat/completions', { model: 'gpt-4o' });
  it('chat completion with cached prompt tokens', () => {
    expect(stableUsage(openai, chat, JSON_TYPE, fixture('openai', 'chat.json'))).toEqual({
      usage: { input: 1117, output: 46, cachedInput: 1024, reasoning: 0 },
      responseModel: 'gpt-4o-2024-08-06',
    });
  });
  it('chat completion of a reasoning model', () => {
    expect(readUsage(openai, chat, JSON_TYPE, [fixture('openai', 'chat-reasoning.json')]).usage).toEqual({
      input: 43,
      output: 1329,
      cachedInput: 0,
      reasoning: 1024,
    });
  });
  it('embeddings report input only', () => {
    const emb = d('/v1/embeddings', { model: 'text-embedding-3-small' });
    expect(readUsage(openai, emb, JSON_TYPE, [fixture('openai', 'embeddings.json')]).usage).toEqual({ input: 8 });
  });
  it('Responses API (input_tokens / output_tokens vocabulary)', () => {
    const r = d('/v1/responses', { model: 'gpt-4.1' });
    expect(readUsage(openai, r, JSON_TYPE, [fixture('openai', 'responses.json')])).toEqual({
      usage: { input: 2036, output: 23, cachedInput: 1920, reasoning: 0 },
      responseModel: 'gpt-4.1-2025-04-14',
    });
  });
  it('reads a gzip-encoded body like a plain one', () => {
    const gz = gzipSync(fixture('openai', 'chat.json'));
    expect(readUsage(openai, chat, { ...JSON_TYPE, 'content-encoding': 'gzip' }, [gz.subarray(0, 10), gz.subarray(10)]).usage).toEqual({
      input: 1117,
      output: 46,
      cachedInput: 1024,
      reasoning: 0,
    });
  });
  it('reports a body it cannot read as unreadable, without usage', () => {
    expect(readUsage(openai, chat, JSON_TYPE, [Buffer.from('<html>bad gateway</html>')])).toEqual({ unreadable: true });
    expect(readUsage(openai, chat, { ...JSON_TYPE, 'content-encoding': 'zstd' }, [Buffer.from('xx')])).toEqual({ unreadable: true });
  });
});

describe('openai: usage from streams, under every chunking', () => {
  const stream = d('/v1/chat/completions', { model: 'gpt-4o-mini', stream: true });
  it('chat stream with include_usage: the usage chunk', () => {
    expect(stableUsage(openai, stream, SSE, fixture('openai', 'chat-stream-include-usage.sse'))).toEqual({
      usage: { input: 19, output: 17, cachedInput: 0, reasoning: 0 },
      responseModel: 'gpt-4o-mini-2024-07-18',
    });
  });
  it('chat stream of a reasoning model with cached prompt tokens', () => {
    expect(stableUsage(openai, stream, SSE, fixture('openai', 'chat-stream-reasoning.sse')).usage).toEqual({
      input: 1200,
      output: 300,
      cachedInput: 1024,
      reasoning: 192,
    });
  });
  it('chat stream without include_usage: usage absent, not zero', () => {
    expect(stableUsage(openai, stream, SSE, fixture('openai', 'chat-stream.sse'))).toEqual({ responseModel: 'gpt-4o-mini-2024-07-18' });
  });
  it('Responses stream: usage of response.completed', () => {
    const r = d('/v1/responses', { model: 'o4-mini', stream: true });
    expect(stableUsage(openai, r, SSE, fixture('openai', 'responses-stream.sse'))).toEqual({
      usage: { input: 36, output: 87, cachedInput: 0, reasoning: 64 },
      responseModel: 'o4-mini-2025-04-16',
    });
  });
  it('a stream cut before its usage chunk reports no usage', () => {
    const body = fixture('openai', 'chat-stream-include-usage.sse');
    const cut = body.subarray(0, body.indexOf('"choices":[],"usage"') - 40);
    expect(readUsage(openai, stream, SSE, [cut]).usage).toBeUndefined();
  });
});

describe('openai: include_usage injection', () => {
  const streamReq = (body: string) => {
    const req = request(API, '/v1/chat/completions', body);
    return { req, d: openai.describe(req, {}) };
  };

  it('inserts stream_options after the opening brace and leaves every other byte alone', () => {
    const body = ' {"model":"gpt-4o-mini",  "stream": true, "seed": 12345678901234567890, "messages":[{"role":"user","content":"hi"}]}';
    const { req, d: desc } = streamReq(body);
    const out = openai.streamUsage!.inject(req, desc)!;
    expect(out.toString()).toBe(
      ' {"stream_options":{"include_usage":true},"model":"gpt-4o-mini",  "stream": true, "seed": 12345678901234567890, "messages":[{"role":"user","content":"hi"}]}',
    );
  });

  it('merges into an existing stream_options and overrides an explicit false', () => {
    const json = parseJsonObject(Buffer.from('{"model":"m","stream":true,"stream_options":{"include_obfuscation":false}}'))!;
    expect(JSON.parse(injectIncludeUsage(Buffer.from(''), json)!.toString())).toEqual({
      model: 'm',
      stream: true,
      stream_options: { include_obfuscation: false, include_usage: true },
    });
    const off = parseJsonObject(Buffer.from('{"stream":true,"stream_options":{"include_usage":false}}'))!;
    expect(JSON.parse(injectIncludeUsage(Buffer.from(''), off)!.toString()).stream_options).toEqual({ include_usage: true });
  });

  it('changes nothing when usage is already asked for, the request does not stream, or it is not chat', () => {
    for (const body of [
      '{"model":"m","stream":true,"stream_options":{"include_usage":true}}',
      '{"model":"m","stream":false}',
      '{"model":"m"}',
    ]) {
      const { req, d: desc } = streamReq(body);
      expect(openai.streamUsage!.inject(req, desc)).toBeUndefined();
    }
    const req = request(API, '/v1/responses', '{"model":"m","stream":true}');
    expect(openai.streamUsage!.inject(req, openai.describe(req, {}))).toBeUndefined();
  });
});

describe('openai: usage-chunk stripper', () => {
  const strip = (chunks: Buffer[]): Buffer => {
    const s = new IncludeUsageStripper();
    return Buffer.concat([...chunks.map((c) => s.push(c)), s.flush()]);
  };
  const withUsage = fixture('openai', 'chat-stream-include-usage.sse');
  const without = fixture('openai', 'chat-stream.sse');

  it('gives the client byte for byte the stream it asked for, under every chunking', () => {
    const wrong = chunkings(withUsage).filter(({ chunks }) => !strip(chunks).equals(without));
    expect(wrong.map((w) => w.name)).toEqual([]);
  });

  it('does the same for CRLF-framed streams, with CRLFs split across chunks', () => {
    const crlf = (b: Buffer) => Buffer.from(b.toString().replace(/\n/g, '\r\n'));
    const expected = crlf(without);
    const wrong = chunkings(crlf(withUsage), 10).filter(({ chunks }) => !strip(chunks).equals(expected));
    expect(wrong.map((w) => w.name)).toEqual([]);
  });

  it('removes "usage":null wherever it sits among the top-level members, and only there', () => {
    const upstream = Buffer.from(
      'data: {"id":"x","usage": null, "choices":[{"delta":{"content":"{\\"usage\\":null}"},"usage":null}]}\n\n' +
        'data: {"usage":null,"id":"y","choices":[]}\n\n',
    );
    expect(strip([upstream]).toString()).toBe(
      'data: {"id":"x", "choices":[{"delta":{"content":"{\\"usage\\":null}"},"usage":null}]}\n\n' + 'data: {"id":"y","choices":[]}\n\n',
    );
  });

  it('passes a stream without injected usage through unchanged', () => {
    expect(strip([without]).equals(without)).toBe(true);
  });

  it('holds back nothing but an unfinished event', () => {
    const s = new IncludeUsageStripper();
    const firstEnd = withUsage.indexOf('\n\n') + 2;
    const out = s.push(withUsage.subarray(0, firstEnd + 7));
    expect(out.toString()).toBe(without.subarray(0, without.indexOf('\n\n') + 2).toString());
    expect(s.flush().toString()).toBe('data: {');
  });

  it('removes a top-level null member with one comma, and nothing else', () => {
    expect(removeNullMember('{"a":1,"usage":null}', 'usage')).toBe('{"a":1}');
    expect(removeNullMember('{"usage":null,"a":1}', 'usage')).toBe('{"a":1}');
    expect(removeNullMember('{"a":1, "usage" : null ,"b":[1,{"usage":null}]}', 'usage')).toBe('{"a":1,"b":[1,{"usage":null}]}');
    expect(removeNullMember('{"usage":null}', 'usage')).toBe('{}');
    expect(removeNullMember('{"a":{"usage":null}}', 'usage')).toBeUndefined();
    expect(removeNullMember('{"a":"\\"usage\\":null","usage":{"x":1}}', 'usage')).toBeUndefined();
  });
});
