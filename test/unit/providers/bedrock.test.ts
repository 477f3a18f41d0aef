import { EventStreamCodec } from '@smithy/eventstream-codec';
import { fromUtf8, toUtf8 } from '@smithy/util-utf8';
import { describe, expect, it } from 'vitest';
import { bedrock, parseModelId } from '../../../shared/providers/bedrock.js';
import { EVENT_STREAM, fixture, JSON_TYPE, readUsage, request, stableUsage } from './support.js';

const HOST = 'bedrock-runtime.eu-central-1.amazonaws.com';
const d = (path: string, host = HOST) => bedrock.describe(request(host, path, {}), {});
const enc = encodeURIComponent;

describe('bedrock: model IDs', () => {
  it('splits profile, vendor alias and ARN region', () => {
    expect(parseModelId('anthropic.claude-3-5-sonnet-20240620-v1:0')).toEqual({
      model: 'anthropic.claude-3-5-sonnet-20240620-v1:0',
      aliases: ['claude-3-5-sonnet-20240620-v1:0'],
    });
    expect(parseModelId('eu.anthropic.claude-sonnet-4-20250514-v1:0')).toEqual({
      model: 'anthropic.claude-sonnet-4-20250514-v1:0',
      aliases: ['claude-sonnet-4-20250514-v1:0'],
      profile: 'eu',
    });
    expect(parseModelId('arn:aws:bedrock:eu-west-1:123456789012:inference-profile/global.amazon.nova-pro-v1:0')).toEqual({
      model: 'amazon.nova-pro-v1:0',
      aliases: ['nova-pro-v1:0'],
      profile: 'global',
      arnRegion: 'eu-west-1',
    });
    expect(parseModelId('arn:aws:bedrock:eu-west-1:123456789012:application-inference-profile/a1b2c3d4e5f6')).toEqual({
      model: 'a1b2c3d4e5f6',
      aliases: [],
      arnRegion: 'eu-west-1',
    });
    expect(parseModelId('xx.anthropic.claude-3-haiku-20240307-v1:0')).toMatchObject({ unknownProfile: 'xx', model: 'anthropic.claude-3-haiku-20240307-v1:0' });
    // A profile of a vendor this table does not know is still a profile; a new geography is still unknown.
    expect(parseModelId('eu.newvendor.model-v1:0')).toEqual({ model: 'newvendor.model-v1:0', aliases: [], profile: 'eu' });
    expect(parseModelId('ca.newvendor.model-v1:0')).toMatchObject({ unknownProfile: 'ca' });
  });
});

describe('bedrock: describe', () => {
  it('operations and streaming from the path; the region from the host (FIPS too)', () => {
    expect(d(`/model/${enc('anthropic.claude-3-5-haiku-20241022-v1:0')}/converse`)).toMatchObject({
      operation: 'chat',
      stream: false,
      model: 'anthropic.claude-3-5-haiku-20241022-v1:0',
      modelAliases: ['claude-3-5-haiku-20241022-v1:0'],
      region: 'eu-central-1',
      reach: ['eu-central-1'],
    });
    expect(d('/model/amazon.nova-lite-v1:0/converse-stream', 'bedrock-runtime-fips.us-east-1.amazonaws.com')).toMatchObject({
      stream: true,
      action: 'converse-stream',
      reach: ['us-east-1'],
    });
    expect(d('/model/amazon.titan-embed-text-v2:0/invoke')).toMatchObject({ operation: 'embeddings' });
    expect(d('/model/anthropic.claude-3-haiku-20240307-v1:0/invoke-with-response-stream')).toMatchObject({ operation: 'chat', stream: true });
    expect(d('/model/anthropic.claude-3-haiku-20240307-v1:0/count-tokens')).toMatchObject({ operation: 'count_tokens' });
    expect(d('/guardrail/abc/version/1/apply')).toMatchObject({ operation: 'unknown', reach: ['eu-central-1'] });
  });
  it('a cross-region inference profile reaches its whole geography', () => {
    expect(d(`/model/${enc('eu.anthropic.claude-sonnet-4-20250514-v1:0')}/converse`).reach).toEqual(['eu-central-1', 'eu']);
    expect(d('/model/us.anthropic.claude-sonnet-4-20250514-v1:0/converse', 'bedrock-runtime.us-west-2.amazonaws.com').reach).toEqual(['us-west-2', 'us']);
    expect(d('/model/global.anthropic.claude-sonnet-4-5-20250929-v1:0/converse').reach).toEqual(['eu-central-1', 'global']);
    expect(d('/model/apac.amazon.nova-pro-v1:0/converse', 'bedrock-runtime.ap-southeast-1.amazonaws.com').reach).toEqual(['ap-southeast-1', 'apac', 'me-central-1']);
    expect(d('/model/jp.anthropic.claude-sonnet-4-5-20250929-v1:0/converse', 'bedrock-runtime.ap-northeast-1.amazonaws.com').reach).toEqual([
      'ap-northeast-1',
      'ap-northeast-3',
    ]);
  });
  it('an unrecognised profile prefix makes the region unknown rather than guessing', () => {
    const x = d('/model/zz.anthropic.claude-3-haiku-20240307-v1:0/converse');
    expect(x.reach).toBeUndefined();
    expect(x.regionNote).toContain('"zz."');
  });
  it('an ARN naming another region adds it to the reach', () => {
    const arn = 'arn:aws:bedrock:us-east-1:123456789012:foundation-model/anthropic.claude-3-haiku-20240307-v1:0';
    expect(d(`/model/${enc(arn)}/invoke`).reach).toEqual(['eu-central-1', 'us-east-1']);
  });
});

describe('bedrock: usage', () => {
  it('Converse JSON: inputTokens excludes the cache read, which is added', () => {
    expect(stableUsage(bedrock, d('/model/anthropic.claude-3-5-haiku-20241022-v1:0/converse'), JSON_TYPE, fixture('bedrock', 'converse.json'))).toEqual({
      usage: { input: 12 + 2048, output: 57, cachedInput: 2048, cacheWriteInput: 0 },
    });
  });
  it('ConverseStream (AWS event stream): the metadata event, under every chunking', () => {
    const s = d('/model/eu.anthropic.claude-sonnet-4-20250514-v1:0/converse-stream');
    expect(stableUsage(bedrock, s, EVENT_STREAM, fixture('bedrock', 'converse-stream.eventstream'))).toEqual({
      usage: { input: 25 + 1152, output: 31, cachedInput: 0, cacheWriteInput: 1152 },
    });
  });
  it('InvokeModel: usage from the x-amzn-bedrock-*-token-count headers', () => {
    const i = d('/model/anthropic.claude-3-haiku-20240307-v1:0/invoke');
    const headers = {
      ...JSON_TYPE,
      'x-amzn-bedrock-input-token-count': '1210',
      'x-amzn-bedrock-output-token-count': '88',
      'x-amzn-bedrock-cache-read-input-token-count': '1024',
      'x-amzn-bedrock-invocation-latency': '1290',
    };
    expect(readUsage(bedrock, i, headers, [Buffer.from('{"content":[]}')])).toEqual({ usage: { input: 1210 + 1024, output: 88, cachedInput: 1024 } });
    expect(readUsage(bedrock, i, { ...JSON_TYPE, 'x-amzn-bedrock-input-token-count': 'lots' }, [])).toEqual({});
  });
  it('InvokeModelWithResponseStream: amazon-bedrock-invocationMetrics of the last chunk', () => {
    const s = d('/model/anthropic.claude-3-5-haiku-20241022-v1:0/invoke-with-response-stream');
    expect(stableUsage(bedrock, s, EVENT_STREAM, fixture('bedrock', 'invoke-stream.eventstream'))).toEqual({ usage: { input: 16, output: 74 } });
  });

  const codec = new EventStreamCodec(toUtf8, fromUtf8);
  const message = (headers: Record<string, string>, body: unknown) =>
    Buffer.from(
      codec.encode({
        headers: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, { type: 'string' as const, value: v }])),
        body: fromUtf8(JSON.stringify(body)),
      }),
    );
  const chunk = (inner: unknown) =>
    message({ ':event-type': 'chunk', ':message-type': 'event', ':content-type': 'application/json' }, { bytes: Buffer.from(JSON.stringify(inner)).toString('base64') });

  it('InvokeModelWithResponseStream without invocation metrics falls back to Claude’s own events', () => {
    const s = d('/model/anthropic.claude-3-5-haiku-20241022-v1:0/invoke-with-response-stream');
    const body = Buffer.concat([
      chunk({ type: 'message_start', message: { usage: { input_tokens: 40, cache_read_input_tokens: 2000, output_tokens: 1 } } }),
      chunk({ type: 'message_delta', usage: { output_tokens: 9 } }),
    ]);
    expect(stableUsage(bedrock, s, EVENT_STREAM, body)).toEqual({ usage: { input: 2040, output: 9, cachedInput: 2000 } });
  });

  it('an exception in the stream before metadata leaves usage absent; a corrupt frame makes the body unreadable', () => {
    const s = d('/model/anthropic.claude-3-5-haiku-20241022-v1:0/converse-stream');
    const exception = message({ ':message-type': 'exception', ':exception-type': 'throttlingException', ':content-type': 'application/json' }, { message: 'slow down' });
    expect(readUsage(bedrock, s, EVENT_STREAM, [exception])).toEqual({});
    const good = fixture('bedrock', 'converse-stream.eventstream');
    const corrupt = Buffer.from(good);
    corrupt[20] = corrupt[20]! ^ 0xff; // inside the first message's headers: its CRC no longer matches
    expect(readUsage(bedrock, s, EVENT_STREAM, [corrupt])).toEqual({ unreadable: true });
  });
});
