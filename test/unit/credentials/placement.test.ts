// Header placement per provider through the real runner: the app's credential is replaced in every form it can
// take (headers, query), never forwarded beside the managed one; a provider without a managed credential keeps
// the app's; a managed credential that cannot be had fails closed.
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { generateKeyPairSync, createVerify } from 'node:crypto';
import { buildPipeline } from '../../../sidecar/pipeline/index.js';
import { withoutCredentialQuery } from '../../../sidecar/credentials/placement.js';
import { exchange, policy, runRequest, services, withRegistry } from '../pipeline/harness.js';
import { MapSource, type Secrets } from './support.js';

const KEY = 'sk-managed-0123456789';
const APP = 'sk-app-placeholder';
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const SA_KEY = JSON.stringify({
  type: 'service_account',
  client_email: 'proxy@project.iam.gserviceaccount.com',
  private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  private_key_id: 'kid-1',
});
const secrets: Secrets = { keys: { apiKey: `${KEY}\n`, entra: 'eyJ-entra-token', sa: SA_KEY } };

function setup(credentials: unknown[], s: Secrets = secrets) {
  const p = policy({ credentials });
  const registry = new Registry();
  const source = new MapSource(s);
  const pipeline = withRegistry(buildPipeline(p, { ...services(registry), credentials: source }), registry);
  return { p, pipeline, source };
}

const headersOf = (ex: Awaited<ReturnType<typeof runRequest>>['ex']): Record<string, string[]> => {
  const out: Record<string, string[]> = {};
  for (const [k, v] of ex.request.headers.entries()) (out[k.toLowerCase()] ??= []).push(v);
  return out;
};

/** Every credential form an app might send at once. */
const appCreds = { authorization: `Bearer ${APP}`, 'api-key': APP, 'x-api-key': APP, 'x-goog-api-key': APP };

describe('managed credentials: header placement per provider', () => {
  it.each([
    ['openai', 'api.openai.com', '/v1/chat/completions', 'authorization', `Bearer ${KEY}`],
    ['mistral', 'api.mistral.ai', '/v1/chat/completions', 'authorization', `Bearer ${KEY}`],
    ['azure-openai', 'myres.openai.azure.com', '/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21', 'api-key', KEY],
    ['anthropic', 'api.anthropic.com', '/v1/messages', 'x-api-key', KEY],
    ['gemini', 'generativelanguage.googleapis.com', '/v1beta/models/gemini-2.0-flash:generateContent', 'x-goog-api-key', KEY],
  ])('%s: the managed key in %s, the app\'s gone from every header', async (provider, host, path, header, value) => {
    const { p, pipeline } = setup([{ provider, secretRef: { name: 'keys', key: 'apiKey' } }]);
    const { verdict, ex } = await runRequest(pipeline, exchange(p, host, path, { model: 'm' }, { headers: { ...appCreds, 'anthropic-version': '2023-06-01' } }));
    expect(verdict).toEqual({ action: 'continue' });
    const h = headersOf(ex);
    expect(h[header]).toEqual([value]);
    const all = JSON.stringify(ex.request.headers.entries()) + ex.request.path;
    expect(all).not.toContain(APP);
    // only the provider's own credential header is left
    for (const other of ['authorization', 'api-key', 'x-api-key', 'x-goog-api-key'].filter((x) => x !== header)) expect(h[other]).toBeUndefined();
    expect(h['anthropic-version']).toEqual(['2023-06-01']); // kept as the app sent it
    expect(ex.facts.credential).toBe('managed');
  });

  it('gemini: the app\'s key= is removed from the query (every spelling), other parameters kept in order', async () => {
    const { p, pipeline } = setup([{ provider: 'gemini', secretRef: { name: 'keys', key: 'apiKey' } }]);
    const path = `/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse&key=${APP}&%6Bey=${APP}&KEY=${APP}&x=1`;
    const { ex } = await runRequest(pipeline, exchange(p, 'generativelanguage.googleapis.com', path, {}));
    expect(ex.request.path).toBe('/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse&x=1');
    expect(ex.request.headers.get('x-goog-api-key')).toBe(KEY);
    expect(withoutCredentialQuery('/a?key=1')).toBe('/a');
    expect(withoutCredentialQuery('/a?keys=1&monkey=2')).toBe('/a?keys=1&monkey=2');
    expect(withoutCredentialQuery('/a')).toBe('/a');
  });

  it('azure-openai with azureAuth entra: an Entra ID bearer token, no api-key', async () => {
    const { p, pipeline } = setup([{ provider: 'azure-openai', azureAuth: 'entra', secretRef: { name: 'keys', key: 'entra' } }]);
    const { ex } = await runRequest(pipeline, exchange(p, 'myres.openai.azure.com', '/openai/v1/chat/completions', {}, { headers: { 'api-key': APP } }));
    const h = headersOf(ex);
    expect(h.authorization).toEqual(['Bearer eyJ-entra-token']);
    expect(h['api-key']).toBeUndefined();
  });

  it('vertex-ai: a bearer access token signed with the service-account key (scope cloud-platform, one hour)', async () => {
    const { p, pipeline } = setup([{ provider: 'vertex-ai', secretRef: { name: 'keys', key: 'sa' } }]);
    const path = `/v1/projects/p/locations/europe-west4/publishers/google/models/gemini-2.0-flash:generateContent?key=${APP}`;
    const { ex } = await runRequest(pipeline, exchange(p, 'europe-west4-aiplatform.googleapis.com', path, {}, { headers: { authorization: `Bearer ${APP}` } }));
    const auth = ex.request.headers.getAll('authorization');
    expect(auth).toHaveLength(1);
    const jwt = auth[0]!.replace(/^Bearer /, '');
    const [h, c, sig] = jwt.split('.') as [string, string, string];
    expect(JSON.parse(Buffer.from(h, 'base64url').toString())).toMatchObject({ alg: 'RS256', kid: 'kid-1' });
    const claims = JSON.parse(Buffer.from(c, 'base64url').toString()) as Record<string, unknown>;
    expect(claims).toMatchObject({ iss: 'proxy@project.iam.gserviceaccount.com', sub: 'proxy@project.iam.gserviceaccount.com', scope: 'https://www.googleapis.com/auth/cloud-platform' });
    expect((claims.exp as number) - (claims.iat as number)).toBe(3600);
    // verified independently with the key's public half
    expect(createVerify('RSA-SHA256').update(`${h}.${c}`).verify(privateKey, Buffer.from(sig, 'base64url'))).toBe(true);
    expect(ex.request.path).not.toContain('key=');
  });

  it('azure-openai: a resource not in regions.azureResources is denied before the key is placed (unknown: deny)', async () => {
    const p = policy({ regions: { allow: ['eu'], unknown: 'deny', azureResources: { ours: 'swedencentral' } }, credentials: [{ provider: 'azure-openai', secretRef: { name: 'keys', key: 'apiKey' } }] });
    const pipeline = withRegistry(buildPipeline(p, { ...services(new Registry()), credentials: new MapSource(secrets) }), new Registry());
    const path = '/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21';
    const theirs = await runRequest(pipeline, exchange(p, 'attacker.openai.azure.com', path, { messages: [] }, { headers: { 'api-key': APP } }));
    expect(theirs.verdict).toMatchObject({ action: 'deny', status: 451 });
    expect(theirs.ex.request.headers.get('api-key')).toBe(APP); // never replaced: nothing is sent at all
    const ours = await runRequest(pipeline, exchange(p, 'ours.openai.azure.com', path, { messages: [] }, { headers: { 'api-key': APP } }));
    expect(ours.verdict).toEqual({ action: 'continue' });
    expect(ours.ex.request.headers.get('api-key')).toBe(KEY);
  });

  it('a provider without a managed credential keeps the app\'s credential untouched', async () => {
    const { p, pipeline } = setup([{ provider: 'anthropic', secretRef: { name: 'keys', key: 'apiKey' } }]);
    const raw = Buffer.from('{"model":"gpt-4o"}');
    const { ex } = await runRequest(pipeline, exchange(p, 'api.openai.com', '/v1/chat/completions?key=x', raw, { headers: { authorization: `Bearer ${APP}` } }));
    expect(ex.request.headers.get('authorization')).toBe(`Bearer ${APP}`);
    expect(ex.request.path).toBe('/v1/chat/completions?key=x');
    expect(ex.request.body.bytes().equals(raw)).toBe(true);
    expect(ex.facts.credential).toBeUndefined();
  });

  it('fails closed (503, nothing sent) when the managed credential cannot be had: no app key goes in its place', async () => {
    for (const s of [{}, { keys: {} }, { keys: { apiKey: '  \n' } }, { keys: { apiKey: 'a\r\nx-evil: 1' } }] as Secrets[]) {
      const { p, pipeline } = setup([{ provider: 'openai', secretRef: { name: 'keys', key: 'apiKey' } }], s);
      const { verdict } = await runRequest(pipeline, exchange(p, 'api.openai.com', '/v1/chat/completions', {}, { headers: { authorization: `Bearer ${APP}` } }));
      expect(verdict).toMatchObject({ action: 'deny', status: 503, reason: 'credential_unavailable' });
      expect((verdict as { message: string }).message).toContain('keys/apiKey');
    }
  });

  it('builds nothing for a policy without credentials, and refuses a policy with credentials but no source', () => {
    const none = buildPipeline(policy(), services());
    expect(none.processors.map((x) => x.type)).not.toContain('credentials');
    const p = policy({ credentials: [{ provider: 'openai', secretRef: { name: 'keys', key: 'apiKey' } }] });
    expect(() => buildPipeline(p, services())).toThrow(/spec\.credentials: this proxy has no credential source/);
    const { pipeline } = setup([{ provider: 'openai', secretRef: { name: 'keys', key: 'apiKey' } }]);
    expect(pipeline.processors.map((x) => x.type)).toContain('credentials');
    expect(pipeline.processors.map((x) => x.type)).not.toContain('sigv4'); // no bedrock credential, no signer
  });

  it('releases what a pipeline used when it is closed', async () => {
    const { pipeline, source } = setup([{ provider: 'openai', secretRef: { name: 'keys', key: 'apiKey' } }]);
    expect(source.used).toHaveLength(1);
    await pipeline.close();
    expect(source.released).toBe(1);
  });
});
