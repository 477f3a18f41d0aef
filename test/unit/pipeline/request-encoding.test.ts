// The request-encoding step: a compressed request body is decoded before any step reads it, so the model rules,
// budgets and metering see the model, and the provider gets exactly what was inspected; what cannot be decoded,
// or must keep its bytes (an app-signed Bedrock request), goes on as sent for each step to judge.
import { brotliCompressSync, deflateRawSync, gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { codingsOf, decodeBody, MAX_DECODED_BODY } from '../../../sidecar/pipeline/request-encoding.js';
import { Registry } from 'prom-client';
import { buildPipeline } from '../../../sidecar/pipeline/index.js';
import { exchange, policy, runRequest, services, setup, withRegistry } from './harness.js';

const CHAT = '/v1/chat/completions';
const chat = (model: string) => Buffer.from(JSON.stringify({ model, max_tokens: 50, messages: [{ role: 'user', content: 'hello' }] }));

describe('decodeBody', () => {
  it('undoes the codings in reverse order of application', () => {
    const raw = chat('gpt-4o');
    expect(codingsOf(' gzip , Identity,br')).toEqual(['gzip', 'br']);
    const both = brotliCompressSync(gzipSync(raw)); // gzip applied first, then br
    expect(decodeBody('gzip, br', both)).toEqual({ bytes: raw });
    expect(decodeBody('deflate', deflateRawSync(raw))).toEqual({ bytes: raw });
    expect(decodeBody('zstd', raw)).toMatchObject({ why: expect.stringContaining('zstd is not one the proxy decodes') });
    expect(decodeBody('gzip', gzipSync(Buffer.alloc(MAX_DECODED_BODY + 1)))).toMatchObject({ why: expect.stringContaining('decodes to more than') });
  });
});

describe('a compressed request through the whole pipeline', () => {
  it('a model on a deny list is denied though the body is gzip (it passed unseen before this step)', async () => {
    const p = policy({ models: { deny: ['gpt-4o-mini*'] } });
    const { pipeline } = setup(p);
    const r = await runRequest(pipeline, exchange(p, 'api.openai.com', CHAT, gzipSync(chat('gpt-4o-mini')), { headers: { 'content-encoding': 'gzip' } }));
    expect(r.verdict).toMatchObject({ action: 'deny', status: 403, reason: 'model_denied' });
    expect(r.ex.facts).toMatchObject({ model: 'gpt-4o-mini', requestEncoding: 'gzip' });
  });

  it('an allowed one goes upstream decoded, content-encoding removed and content-length the decoded size', async () => {
    const p = policy({ models: { allow: ['gpt-4o'] } });
    const { pipeline } = setup(p);
    const raw = chat('gpt-4o');
    const r = await runRequest(pipeline, exchange(p, 'api.openai.com', CHAT, brotliCompressSync(raw), { headers: { 'content-encoding': 'br' } }));
    expect(r.verdict).toEqual({ action: 'continue' });
    expect(r.ex.request.body.bytes().equals(raw)).toBe(true);
    expect(r.ex.request.headers.has('content-encoding')).toBe(false);
    expect(r.ex.request.headers.get('content-length')).toBe(String(raw.length));
  });

  it('a budget estimates from the decoded body', async () => {
    const p = policy({ budgets: [{ tokens: 1000, per: '1m', scope: 'pod' }] });
    const { pipeline } = setup(p);
    const r = await runRequest(pipeline, exchange(p, 'api.openai.com', CHAT, gzipSync(chat('gpt-4o')), { headers: { 'content-encoding': 'gzip' } }));
    expect(r.verdict).toEqual({ action: 'continue' });
    expect(r.ex.facts.budgetReservedTokens).toBe(r.ex.results.estimatedInputTokens! + 50);
  });

  it('a body that cannot be decoded goes on as the app sent it, for each step to judge as unreadable', async () => {
    const p = policy({});
    const { pipeline } = setup(p);
    for (const [enc, bytes] of [['zstd', chat('gpt-4o')], ['gzip', Buffer.from('not gzip')]] as const) {
      const r = await runRequest(pipeline, exchange(p, 'api.openai.com', CHAT, bytes, { headers: { 'content-encoding': enc } }));
      expect(r.verdict, enc).toEqual({ action: 'continue' });
      expect(r.ex.request.body.bytes().equals(bytes)).toBe(true);
      expect(r.ex.request.headers.get('content-encoding')).toBe(enc);
      expect(String(r.ex.facts.requestEncoding)).toMatch(/^undecoded: content-encoding /);
    }
    // a model allow list cannot read the model of such a body: refused (fail closed), as for any unreadable body
    const strict = policy({ models: { allow: ['gpt-4o'] } });
    const s = setup(strict);
    const r = await runRequest(s.pipeline, exchange(strict, 'api.openai.com', CHAT, Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3]), { headers: { 'content-encoding': 'zstd' } }));
    expect(r.verdict).toMatchObject({ action: 'deny', status: 403, reason: 'model_unknown' });
  });

  it('a Bedrock request the app signed keeps its bytes (its signature covers them) unless a managed credential re-signs', async () => {
    const path = '/model/anthropic.claude-3-haiku-20240307-v1:0/converse';
    const raw = Buffer.from(JSON.stringify({ messages: [{ role: 'user', content: [{ text: 'hi' }] }] }));
    const gz = gzipSync(raw);
    const signed = { 'content-encoding': 'gzip', authorization: 'AWS4-HMAC-SHA256 Credential=AKIA/20261204/us-east-1/bedrock/aws4_request, SignedHeaders=host, Signature=00' };
    const p = policy({ providers: ['bedrock'] });
    const r = await runRequest(setup(p).pipeline, exchange(p, 'bedrock-runtime.us-east-1.amazonaws.com', path, gz, { headers: signed }));
    expect(r.verdict).toEqual({ action: 'continue' });
    expect(r.ex.request.body.bytes().equals(gz)).toBe(true);
    expect(r.ex.request.headers.get('content-encoding')).toBe('gzip');
    expect(r.ex.facts.model).toBe('anthropic.claude-3-haiku-20240307-v1:0'); // from the path
  });

  it('an undecodable body under a deny list only is refused: the provider might decode what the proxy could not', async () => {
    const p = policy({ models: { deny: ['gpt-4o-mini*'] } });
    const zstdish = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3]);
    const r = await runRequest(setup(p).pipeline, exchange(p, 'api.openai.com', CHAT, zstdish, { headers: { 'content-encoding': 'zstd' } }));
    expect(r.verdict).toMatchObject({ action: 'deny', status: 403, reason: 'model_unknown' });
    expect((r.verdict as { message: string }).message).toContain('could not be decoded');
  });

  it('two content-encoding lines are one list, decoded in order (not the first line alone)', async () => {
    const p = policy({ models: { deny: ['gpt-4o-mini*'] } });
    const both = brotliCompressSync(gzipSync(chat('gpt-4o-mini')));
    const headers = { 'content-encoding': ['gzip', 'br'] as unknown as string };
    const r = await runRequest(setup(p).pipeline, exchange(p, 'api.openai.com', CHAT, both, { headers }));
    expect(r.verdict).toMatchObject({ action: 'deny', status: 403, reason: 'model_denied' });
    const ok = policy({});
    const o = await runRequest(setup(ok).pipeline, exchange(ok, 'api.openai.com', CHAT, both, { headers }));
    expect(o.ex.request.body.bytes().equals(chat('gpt-4o-mini'))).toBe(true);
    expect(o.ex.request.headers.getAll('content-encoding')).toEqual([]);
  });

  it('a body that decodes past the proxy\'s --max-body-bytes gets 413, as a plain body that size does', async () => {
    const p = policy({});
    const registry = new Registry();
    const pipeline = withRegistry(buildPipeline(p, { ...services(registry), maxBodyBytes: 4096 }), registry);
    const small = gzipSync(Buffer.from(JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x'.repeat(5000) }] })));
    expect(small.length).toBeLessThan(4096);
    const r = await runRequest(pipeline, exchange(p, 'api.openai.com', CHAT, small, { headers: { 'content-encoding': 'gzip' } }));
    expect(r.verdict).toMatchObject({ action: 'deny', status: 413, kind: 'too_large', reason: 'body_too_large' });
    const fits = await runRequest(pipeline, exchange(p, 'api.openai.com', CHAT, gzipSync(chat('gpt-4o')), { headers: { 'content-encoding': 'gzip' } }));
    expect(fits.verdict).toEqual({ action: 'continue' });
  });

  it('identity, or no header, leaves the body untouched', async () => {
    const p = policy({});
    const { pipeline } = setup(p);
    const raw = chat('gpt-4o');
    const r = await runRequest(pipeline, exchange(p, 'api.openai.com', CHAT, raw, { headers: { 'content-encoding': 'identity' } }));
    expect(r.verdict).toEqual({ action: 'continue' });
    expect(r.ex.request.body.bytes().equals(raw)).toBe(true);
    expect(r.ex.facts.requestEncoding).toBeUndefined();
  });
});
