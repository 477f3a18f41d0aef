import { describe, expect, it } from 'vitest';
import { clientResponseHeaders, originForm, pathForLog, upstreamRequestHeaders } from '../../../sidecar/proxy/headers.js';

describe('upstreamRequestHeaders', () => {
  it('keeps the app headers in order and case when nothing changed, minus hop-by-hop ones', () => {
    const raw = ['Host', 'api.openai.com', 'Authorization', 'Bearer k', 'Connection', 'keep-alive, X-Hop', 'X-Hop', '1', 'Keep-Alive', 'timeout=5', 'Content-Type', 'application/json', 'Content-Length', '7', 'Expect', '100-continue', 'TE', 'trailers'];
    expect(upstreamRequestHeaders(raw, { bodyLength: 7 })).toEqual([
      'Host', 'api.openai.com', 'Authorization', 'Bearer k', 'Content-Type', 'application/json', 'Content-Length', '7',
    ]);
  });

  it('turns a chunked upload into a sized one', () => {
    const raw = ['Host', 'h', 'Transfer-Encoding', 'chunked'];
    expect(upstreamRequestHeaders(raw, { bodyLength: 12 })).toEqual(['Host', 'h', 'content-length', '12']);
  });

  it('states the new length after a rewrite and applies header changes', () => {
    const raw = ['Host', 'h', 'Content-Length', '100', 'X-Remove', 'a', 'x-replace', 'old', 'x-replace', 'older'];
    expect(upstreamRequestHeaders(raw, { bodyLength: 42, changes: { 'X-Remove': null, 'X-Replace': 'new', 'x-add': 'v', 'Content-Length': '1' } })).toEqual([
      'Host', 'h', 'Content-Length', '42', 'X-Replace', 'new', 'x-add', 'v',
    ]);
  });

  it('replaces Host when told (plain HTTP named port 80) and drops a stray content-length without a body', () => {
    expect(upstreamRequestHeaders(['Host', 'api.openai.com:80', 'Content-Length', '0'], { host: 'api.openai.com' })).toEqual([
      'Host', 'api.openai.com',
    ]);
  });
});

describe('clientResponseHeaders', () => {
  it('drops hop-by-hop headers and keeps the rest as sent', () => {
    const raw = ['Content-Type', 'text/event-stream', 'Transfer-Encoding', 'chunked', 'Connection', 'keep-alive', 'X-Request-Id', 'r1'].map((s) => Buffer.from(s));
    expect(clientResponseHeaders(raw, false)).toEqual(['Content-Type', 'text/event-stream', 'X-Request-Id', 'r1']);
  });
  it('drops content-length only when a processor may resize the body', () => {
    expect(clientResponseHeaders(['Content-Length', '5'], false)).toEqual(['Content-Length', '5']);
    expect(clientResponseHeaders(['Content-Length', '5'], true)).toEqual([]);
  });
});

describe('paths', () => {
  it('origin form of absolute targets', () => {
    expect(originForm('http://api.openai.com/v1/models?x=1')).toBe('/v1/models?x=1');
    expect(originForm('http://api.openai.com')).toBe('/');
    expect(originForm('http://api.openai.com?x')).toBe('/?x');
  });
  it('logs no query string (API keys travel there)', () => {
    expect(pathForLog('/v1beta/models/gemini:generateContent?key=AIzaSECRET')).toBe('/v1beta/models/gemini:generateContent');
  });
});
