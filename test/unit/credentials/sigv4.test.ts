// SigV4 for Bedrock, verified independently of the signer that made it: the AWS test suite's get-vanilla
// vector, and a recomputation with aws4 (a second, unrelated implementation) from the exact wire request the
// pipeline produced: final body, content-length, path, and the app's own signature removed.
import aws4 from 'aws4';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { bedrockScope, signSigV4 } from '../../../sidecar/credentials/sigv4.js';
import { buildPipeline, pipelineOf, type Processor } from '../../../sidecar/pipeline/index.js';
import { exchange, policy, runRequest, services, withRegistry } from '../pipeline/harness.js';
import { MapSource } from './support.js';

const AKID = 'AKIDMANAGED0000001';
const SECRET = 'managed/secret+key/0123456789abcdefghij';
const NOW = Date.parse('2026-12-03T10:20:30Z');

describe('SigV4', () => {
  it('matches the AWS SigV4 test suite vector get-vanilla', async () => {
    const added = await signSigV4(
      { method: 'GET', host: 'example.amazonaws.com', path: '/', headers: [['host', 'example.amazonaws.com']], body: new Uint8Array() },
      { kind: 'aws', accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' },
      { region: 'us-east-1', service: 'service' },
      new Date('2015-08-30T12:36:00Z'),
    );
    expect(added['x-amz-date']).toBe('20150830T123600Z');
    expect(added.authorization).toBe(
      'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, ' +
        'Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31',
    );
  });

  it('takes region and service from the Bedrock host', () => {
    expect(bedrockScope('bedrock-runtime.eu-central-1.amazonaws.com')).toEqual({ region: 'eu-central-1', service: 'bedrock' });
    expect(bedrockScope('bedrock-runtime-fips.us-gov-west-1.amazonaws.com')).toEqual({ region: 'us-gov-west-1', service: 'bedrock' });
    expect(bedrockScope('s3.amazonaws.com')).toBeUndefined();
  });

  for (const sessionToken of [undefined, 'FQoGZXIvYXdzEPT//////////wEaDSTS']) {
    it(`signs the final wire request of a Converse call${sessionToken ? ' with an STS session token' : ''}, verified with aws4`, async () => {
      const secrets = { aws: { id: AKID, secret: SECRET, ...(sessionToken && { session: sessionToken }) } };
      const p = policy({ credentials: [{ provider: 'bedrock', secretRef: { name: 'aws', key: 'secret' }, accessKeyIdKey: 'id', ...(sessionToken && { sessionTokenKey: 'session' }) }] });
      const registry = new Registry();
      const real = buildPipeline(p, { ...services(registry), now: () => NOW, credentials: new MapSource(secrets) }).processors;
      // A transform that grows the body: the signature must cover the final bytes and length.
      const grow: Processor = {
        name: 'grow', type: 'test', phase: 'transform',
        onRequest(ex) {
          ex.request.body.edit((j) => void (j.inferenceConfig = { maxTokens: 64 }));
          return { action: 'continue' };
        },
      };
      const pipeline = withRegistry(pipelineOf([...real, grow]), registry);
      const host = 'bedrock-runtime.eu-central-1.amazonaws.com';
      const path = '/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse';
      const app = {
        host: `${host}:443`,
        authorization: 'AWS4-HMAC-SHA256 Credential=AKIDAPPDUMMY/20261203/eu-central-1/bedrock/aws4_request, SignedHeaders=host, Signature=00',
        'x-amz-date': '20261203T000000Z',
        'x-amz-security-token': 'app-session',
        'x-amz-content-sha256': 'UNSIGNED-PAYLOAD',
        'x-amz-user-agent': 'aws-sdk-js/3',
      };
      const { verdict, ex } = await runRequest(pipeline, exchange(p, host, path, { messages: [{ role: 'user', content: [{ text: 'hi' }] }] }, { headers: app }));
      expect(verdict).toEqual({ action: 'continue' });
      const rq = ex.request;
      const body = rq.body.bytes().toString();
      expect(body).toContain('"maxTokens":64');
      const sent = Object.fromEntries(rq.headers.entries().map(([k, v]) => [k.toLowerCase(), v]));
      expect(rq.headers.getAll('authorization')).toHaveLength(1);
      expect(sent['content-length']).toBe(String(Buffer.byteLength(body)));
      expect(sent.host).toBe(host);
      expect(sent['x-amz-content-sha256']).toBeUndefined(); // the app's UNSIGNED-PAYLOAD is gone
      expect(JSON.stringify(sent)).not.toContain('AKIDAPPDUMMY');
      expect(JSON.stringify(sent)).not.toContain('app-session');
      expect(sent['x-amz-security-token']).toBe(sessionToken);
      expect(sent.authorization).toMatch(new RegExp(`^AWS4-HMAC-SHA256 Credential=${AKID}/20261203/eu-central-1/bedrock/aws4_request, `));
      // Recompute with aws4 from what goes on the wire, minus the signature itself.
      const unsigned = Object.fromEntries(Object.entries(sent).filter(([k]) => k !== 'authorization'));
      const again = aws4.sign(
        { host, method: rq.method, path: rq.path, headers: unsigned, body, service: 'bedrock', region: 'eu-central-1' },
        { accessKeyId: AKID, secretAccessKey: SECRET, ...(sessionToken && { sessionToken }) },
      );
      expect(sent.authorization).toBe((again.headers as Record<string, string>).Authorization);
      // and a signature over a different body would not match
      const tampered = aws4.sign(
        { host, method: rq.method, path: rq.path, headers: unsigned, body: body.replace('hi', 'ho'), service: 'bedrock', region: 'eu-central-1' },
        { accessKeyId: AKID, secretAccessKey: SECRET, ...(sessionToken && { sessionToken }) },
      );
      expect(sent.authorization).not.toBe((tampered.headers as Record<string, string>).Authorization);
    });
  }
});
