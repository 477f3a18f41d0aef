// Short-lived credentials minted by the control plane: long-lived AWS keys are exchanged with STS
// (GetSessionToken, or AssumeRole for a roleArn) and an Entra ID app's client secret for an access token, so a
// proxy only ever receives the short-lived ones. Against fake STS (SigV4 recomputed with aws4) and Entra ID
// endpoints; the minter's clock is held, so "refreshed before expiry" is a fact about the clock, not a race.
import { Registry } from 'prom-client';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseMaterial, resolveCredential, type CredentialMaterial, type Unresolved } from '../../../shared/credentials/material.js';
import { mintVertexToken } from '../../../shared/credentials/vertex-token.js';
import { defaultPolicySpec } from '../../../shared/policy/validate.js';
import type { Credential } from '../../../shared/policy/types.js';
import { ClusterCredentialSource } from '../../../sidecar/credentials/cluster-source.js';
import { CredentialMinter, parseStsAnswer, xmlText } from '../../../webhook/credentials/minting.js';
import { CP_NAMESPACE, startLocalControlPlane, type LocalControlPlane } from '../../support/control-plane.js';
import { captureLogger, eventually } from '../proxy/support.js';
import { startFakeEntra, startFakeSts, type FakeEntra, type FakeSts } from './fake-minters.js';

const LONG_ID = 'AKIALONGLIVED0000001';
const LONG_SECRET = 'wJalrLONGLIVEDsecretNEVERtoAproxy0000001';
const LONG_ID2 = 'AKIALONGLIVED0000002';
const LONG_SECRET2 = 'wJalrLONGLIVEDsecretNEVERtoAproxy0000002';
const CLIENT_ID = '11111111-2222-3333-4444-555555555555';
const CLIENT_SECRET = 'entra~CLIENT~secret~NEVER~to~a~proxy';
const TENANT = 'contoso.onmicrosoft.com';
const REGION = 'eu-central-1';

const bedrock: Credential = { provider: 'bedrock', secretRef: { name: 'aws', key: 'secretAccessKey' }, accessKeyIdKey: 'accessKeyId' };
const entra: Credential = { provider: 'azure-openai', azureAuth: 'entra', secretRef: { name: 'azure-app', key: 'clientSecret' }, tenantIdKey: 'tenantId', clientIdKey: 'clientId' };
const awsData: Record<string, string> = { accessKeyId: LONG_ID, secretAccessKey: LONG_SECRET };
const entraData: Record<string, string> = { tenantId: TENANT, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET };

describe('the minter (held clock)', () => {
  let now = Date.parse('2026-12-04T10:00:00Z');
  const clock = (): number => now;
  let sts: FakeSts;
  let entraFake: FakeEntra;
  beforeAll(async () => {
    sts = await startFakeSts({ keys: { [LONG_ID]: LONG_SECRET }, region: REGION, now: clock });
    entraFake = await startFakeEntra({ apps: { [CLIENT_ID]: CLIENT_SECRET }, now: clock });
  });
  afterAll(async () => {
    await sts.close();
    await entraFake.close();
  });

  const newMinter = () => {
    const cap = captureLogger();
    const registry = new Registry();
    const minter = new CredentialMinter({ stsEndpoint: sts.url, stsRegion: REGION, entraAuthority: entraFake.url, log: cap.logger, registry, now: clock });
    const resolve = async (c: Credential, data: Record<string, string>): Promise<CredentialMaterial | Unresolved> => {
      const once = () => resolveCredential(c, (k) => data[k], mintVertexToken, minter.remote);
      once();
      await minter.pending();
      return once();
    };
    return { minter, resolve, cap, registry };
  };

  it('exchanges long-lived AWS keys with a signed GetSessionToken; refreshes before expiry; a failed refresh keeps the last good ones until they expire', async () => {
    const { minter, resolve, cap, registry } = newMinter();
    const first = await resolve(bedrock, awsData);
    expect(sts.calls).toHaveLength(1);
    expect(sts.calls[0]).toMatchObject({ action: 'GetSessionToken', accessKeyId: LONG_ID, signatureValid: true });
    expect(sts.calls[0]!.params.get('DurationSeconds')).toBe('3600');
    expect(first).toEqual({ kind: 'aws', accessKeyId: 'ASIATEMP1', secretAccessKey: 'tempSecret1', sessionToken: 'FwoTEMPTOKEN1/a+b=&c', expiresAt: now + 3_600_000 });
    const exp1 = (first as { expiresAt: number }).expiresAt;

    // 44 minutes on: cached, no call; the next due time is the refresh, 15 minutes before expiry
    now += 44 * 60_000;
    expect(await resolve(bedrock, awsData)).toBe(first);
    expect(sts.calls).toHaveLength(1);
    expect(minter.nextDue()).toBe(exp1 - 15 * 60_000);

    // 46 minutes on (14 left): re-minted, while the first ones are still valid
    now += 2 * 60_000;
    const second = await resolve(bedrock, awsData);
    expect(sts.calls).toHaveLength(2);
    expect(sts.calls[1]!.at).toBeLessThan(exp1);
    expect(second).toMatchObject({ accessKeyId: 'ASIATEMP2', sessionToken: 'FwoTEMPTOKEN2/a+b=&c' });
    const exp2 = (second as { expiresAt: number }).expiresAt;

    // STS fails at the next refresh: the last good ones are kept, the failure logged and counted, retries back off
    sts.fail = { status: 403, code: 'AccessDenied', message: `not authorized (echoing ${LONG_SECRET})` };
    now = exp2 - 10 * 60_000;
    expect(await resolve(bedrock, awsData)).toBe(second);
    expect(sts.calls).toHaveLength(3);
    expect(minter.nextDue()).toBe(now + 2000);
    expect(await resolve(bedrock, awsData)).toBe(second); // within the back-off: no new call
    expect(sts.calls).toHaveLength(3);
    const metrics = await registry.getSingleMetricAsString('aigress_credential_mints_total');
    expect(metrics).toContain('aigress_credential_mints_total{provider="bedrock",result="ok"} 2');
    expect(metrics).toContain('aigress_credential_mints_total{provider="bedrock",result="error"} 1');
    expect(cap.lines.find((l) => l.msg === 'minting short-lived credentials failed; proxies keep the last good ones until they expire')).toMatchObject({
      provider: 'bedrock',
      err: expect.stringContaining('STS answered 403 AccessDenied'),
      keepingUntil: new Date(exp2).toISOString(),
    });

    // once they have expired and STS still fails: no credentials (the proxy refuses), never the long-lived keys
    now = exp2 + 1;
    const gone = await resolve(bedrock, awsData);
    expect(gone).toEqual({ error: expect.stringContaining('minting short-lived credentials failed: STS answered 403 AccessDenied') });
    expect(JSON.stringify(gone)).toContain('[redacted]');
    // and STS back: minted again
    sts.fail = undefined;
    now += 60_000;
    expect(await resolve(bedrock, awsData)).toMatchObject({ kind: 'aws', accessKeyId: 'ASIATEMP3' });
    const logs = cap.raw.join('\n');
    expect(logs).not.toContain(LONG_SECRET);
    expect(logs).not.toContain('tempSecret');
    expect(logs).not.toContain('FwoTEMPTOKEN');
  });

  it('assumes the role a credential names, with its session name; a rotated key is a new exchange', async () => {
    const { resolve } = newMinter();
    sts.calls.length = 0;
    const role: Credential = { ...bedrock, roleArn: 'arn:aws:iam::123456789012:role/bedrock-team-a', roleSessionName: 'team-a' };
    const m = await resolve(role, awsData);
    expect(sts.calls[0]).toMatchObject({ action: 'AssumeRole', signatureValid: true });
    expect(sts.calls[0]!.params.get('RoleArn')).toBe('arn:aws:iam::123456789012:role/bedrock-team-a');
    expect(sts.calls[0]!.params.get('RoleSessionName')).toBe('team-a');
    expect(m).toMatchObject({ kind: 'aws', accessKeyId: expect.stringMatching(/^ASIATEMP/) });
    // a key STS does not know: its refusal is the answer, and the wrong secret is nowhere in it
    const bad = await resolve(bedrock, { accessKeyId: 'AKIAUNKNOWN', secretAccessKey: 'rotated-but-wrong-secret' });
    expect(bad).toEqual({ error: expect.stringContaining('STS answered 403 SignatureDoesNotMatch') });
    expect(JSON.stringify(bad)).not.toContain('rotated-but-wrong-secret');
  });

  it('passes session credentials given in the Secret as they are (no STS call)', async () => {
    const { resolve } = newMinter();
    sts.calls.length = 0;
    const m = await resolve({ ...bedrock, sessionTokenKey: 'sessionToken' }, { ...awsData, sessionToken: 'given-session' });
    expect(m).toEqual({ kind: 'aws', accessKeyId: LONG_ID, secretAccessKey: LONG_SECRET, sessionToken: 'given-session' });
    expect(sts.calls).toHaveLength(0);
  });

  it('mints an Entra ID token with the client-credentials flow and refreshes it before expiry; a plain token passes as given', async () => {
    const { minter, resolve, cap } = newMinter();
    const t = await resolve(entra, entraData);
    expect(entraFake.calls).toHaveLength(1);
    expect(entraFake.calls[0]!.tenant).toBe(TENANT);
    expect(Object.fromEntries(entraFake.calls[0]!.form)).toEqual({ grant_type: 'client_credentials', client_id: CLIENT_ID, client_secret: CLIENT_SECRET, scope: 'https://cognitiveservices.azure.com/.default' });
    expect(t).toEqual({ kind: 'bearer', token: `eyENTRA.${TENANT}.1`, expiresAt: now + 3_599_000 });
    const exp = (t as { expiresAt: number }).expiresAt;
    now = exp - 16 * 60_000;
    expect(await resolve(entra, entraData)).toBe(t);
    now = exp - 14 * 60_000;
    expect(await resolve(entra, entraData)).toMatchObject({ token: `eyENTRA.${TENANT}.2` });
    expect(entraFake.calls.at(-1)!.at).toBeLessThan(exp);
    // a wrong client secret: Entra's refusal, first line only, and never the secret
    const wrong = await resolve(entra, { ...entraData, clientSecret: 'wrong-client-secret-value' });
    expect(wrong).toEqual({ error: expect.stringContaining('Entra ID answered 401 invalid_client: AADSTS7000215') });
    expect(JSON.stringify(wrong)).not.toContain('Trace ID');
    // a tenant that would change the URL is refused before any call
    const calls = entraFake.calls.length;
    expect(await resolve(entra, { ...entraData, tenantId: 'evil.example/x?' })).toEqual({ error: expect.stringContaining('is not a tenant id or domain name') });
    expect(entraFake.calls).toHaveLength(calls);
    // no tenantIdKey/clientIdKey: the value is the token
    expect(await resolve({ provider: 'azure-openai', azureAuth: 'entra', secretRef: { name: 'a', key: 'token' } }, { token: 'given-token' })).toEqual({ kind: 'bearer', token: 'given-token' });
    expect(minter.nextDue()).toBeGreaterThan(now);
    expect(cap.raw.join('\n')).not.toContain(CLIENT_SECRET);
    expect(cap.raw.join('\n')).not.toContain('eyENTRA');
  });

  it('one answer waits only for its own mints: a slow STS does not hold up an Entra-only answer', async () => {
    const { minter } = newMinter();
    let release = (): void => undefined;
    sts.hold = new Promise((r) => (release = r));
    const a = minter.scope();
    expect(resolveCredential(bedrock, (k) => awsData[k], mintVertexToken, a.remote)).toEqual({ error: 'short-lived credentials are being minted' });
    const b = minter.scope();
    resolveCredential(entra, (k) => entraData[k], mintVertexToken, b.remote);
    let stsDone = false;
    void a.pending()!.then(() => (stsDone = true));
    await b.pending();
    expect(resolveCredential(entra, (k) => entraData[k], mintVertexToken, b.remote)).toMatchObject({ kind: 'bearer' });
    expect(stsDone).toBe(false);
    expect(b.nextDue()).toBeGreaterThan(now);
    release();
    sts.hold = undefined;
    await a.pending();
    expect(resolveCredential(bedrock, (k) => awsData[k], mintVertexToken, a.remote)).toMatchObject({ kind: 'aws', accessKeyId: expect.stringMatching(/^ASIATEMP/) });
  });

  it('a standalone proxy (no control plane to mint) refuses roleArn and Entra client credentials instead of sending the long-lived ones', () => {
    const standalone = (c: Credential, data: Record<string, string>) => resolveCredential(c, (k) => data[k], mintVertexToken);
    expect(standalone({ ...bedrock, roleArn: 'arn:aws:iam::123456789012:role/r' }, awsData)).toEqual({ error: expect.stringContaining('roleArn needs the control plane') });
    expect(standalone(entra, entraData)).toEqual({ error: expect.stringContaining('need the control plane') });
    // standalone static keys keep working as before
    expect(standalone(bedrock, awsData)).toEqual({ kind: 'aws', accessKeyId: LONG_ID, secretAccessKey: LONG_SECRET });
  });

  it('parses STS answers minimally: entities decoded, nothing missing, errors named', () => {
    expect(xmlText('<a><Code>X&amp;Y&#65;&#x42;</Code></a>', 'Code')).toBe('X&YAB');
    expect(() => parseStsAnswer(200, '<R><Credentials><AccessKeyId>A</AccessKeyId></Credentials></R>')).toThrow(/without AccessKeyId, SecretAccessKey, SessionToken and Expiration/);
    expect(() => parseStsAnswer(200, '<R/>')).toThrow(/without Credentials/);
    expect(() => parseStsAnswer(500, 'not xml')).toThrow(/^STS answered 500$/);
    // what the proxy receives keeps the expiry
    expect(parseMaterial({ kind: 'aws', accessKeyId: 'A', secretAccessKey: 'S', sessionToken: 'T', expiresAt: 5 })).toEqual({ kind: 'aws', accessKeyId: 'A', secretAccessKey: 'S', sessionToken: 'T', expiresAt: 5 });
  });
});

describe('GET /v1/credentials with minted credentials (control plane, fake STS and Entra ID)', () => {
  let lcp: LocalControlPlane;
  let sts: FakeSts;
  let entraFake: FakeEntra;
  let dispatcher: Agent;
  let token = '';

  const get = async (etag?: string, wait = ''): Promise<{ status: number; etag?: string; text: string }> => {
    const res = await request(`${lcp.url}/v1/credentials?provider=bedrock&provider=azure-openai${wait}`, {
      dispatcher,
      headers: { authorization: `Bearer ${token}`, ...(etag && { 'if-none-match': etag }) },
    });
    return { status: res.statusCode, etag: res.headers.etag as string | undefined, text: await res.body.text() };
  };

  beforeAll(async () => {
    sts = await startFakeSts({ keys: { [LONG_ID]: LONG_SECRET, [LONG_ID2]: LONG_SECRET2 }, region: REGION, now: Date.now });
    entraFake = await startFakeEntra({ apps: { [CLIENT_ID]: CLIENT_SECRET }, now: Date.now });
    lcp = await startLocalControlPlane({
      defaults: { ...defaultPolicySpec(), providers: ['bedrock', 'azure-openai'] },
      minting: { stsEndpoint: sts.url, stsRegion: REGION, entraAuthority: entraFake.url },
    });
    lcp.enableNamespace('team-a');
    const secret = (name: string, data: Record<string, string>) => ({ metadata: { name, namespace: CP_NAMESPACE, annotations: { 'aigress.io/credential-namespaces': 'team-a' } }, stringData: data });
    lcp.api.put('v1', 'secrets', secret('aws', awsData));
    lcp.api.put('v1', 'secrets', secret('azure-app', entraData));
    lcp.api.put('aigress.io/v1alpha1', 'egresspolicies', { apiVersion: 'aigress.io/v1alpha1', kind: 'EgressPolicy', metadata: { name: 'p', namespace: 'team-a' }, spec: { providers: ['bedrock', 'azure-openai'], credentials: [bedrock, entra] } });
    dispatcher = new Agent({ connect: { ca: lcp.cp.caPem } });
    token = (await lcp.tokenFile('team-a', 'app')).split('/').pop()!;
    await eventually(async () => (await get()).text.includes('ASIATEMP'));
  }, 30_000);
  afterAll(async () => {
    await dispatcher?.close();
    await lcp?.close().catch(() => undefined);
    await sts?.close();
    await entraFake?.close();
  });

  it('answers with only the temporary credentials and the minted token, never the long-lived secrets, in the answer or any log line', async () => {
    const r = await get();
    expect(r.status).toBe(200);
    const doc = JSON.parse(r.text) as { credentials: { provider: string; material?: Record<string, unknown> }[] };
    const by = Object.fromEntries(doc.credentials.map((c) => [c.provider, c.material]));
    expect(by.bedrock).toMatchObject({ kind: 'aws', accessKeyId: expect.stringMatching(/^ASIATEMP/), sessionToken: expect.stringMatching(/^FwoTEMPTOKEN/), expiresAt: expect.any(Number) });
    expect(by['azure-openai']).toMatchObject({ kind: 'bearer', token: expect.stringMatching(/^eyENTRA\./), expiresAt: expect.any(Number) });
    expect(sts.calls.every((c) => c.signatureValid && c.accessKeyId === LONG_ID)).toBe(true);
    for (const secret of [LONG_SECRET, LONG_ID, CLIENT_SECRET]) {
      expect(r.text).not.toContain(secret);
      expect(lcp.logText()).not.toContain(secret);
      expect(lcp.logText()).not.toContain(Buffer.from(secret).toString('base64'));
    }
    // a long poll with the current ETag and nothing due: 304, and no new mint
    const calls = sts.calls.length;
    const again = await get(r.etag);
    expect(again.status).toBe(304);
    expect(sts.calls).toHaveLength(calls);
  });

  it('a proxy holds minted credentials until they expire, not after (the control plane away)', async () => {
    let now = Date.now();
    const cap = captureLogger();
    const source = new ClusterCredentialSource({ controlPlane: new URL(lcp.url), tokenFile: await lcp.tokenFile('team-a', 'proxy'), caPem: lcp.cp.caPem, log: cap.logger, now: () => now });
    try {
      const release = source.use([bedrock, entra]);
      await source.settled(bedrock, AbortSignal.timeout(10_000));
      const m = source.get(bedrock);
      expect(m).toMatchObject({ kind: 'aws', accessKeyId: expect.stringMatching(/^ASIATEMP/), expiresAt: expect.any(Number) });
      expect(source.get(entra)).toMatchObject({ kind: 'bearer', token: expect.stringMatching(/^eyENTRA\./) });
      now = (m as { expiresAt: number }).expiresAt;
      expect(source.get(bedrock)).toEqual({ error: expect.stringContaining('expired at') });
      release();
    } finally {
      await source.close();
    }
  });

  it('a long poll wakes when the credentials are due for refresh and answers with fresh ones (a rotated key is a new exchange)', async () => {
    // Credentials that last 6 s are due after 3 s (half their lifetime). Rotating the Secret to a second key pair
    // makes the control plane exchange it at once, for such short-lived ones.
    sts.lifetimeMs = 6000;
    lcp.api.put('v1', 'secrets', { metadata: { name: 'aws', namespace: CP_NAMESPACE, annotations: { 'aigress.io/credential-namespaces': 'team-a' } }, stringData: { accessKeyId: LONG_ID2, secretAccessKey: LONG_SECRET2 } });
    type Doc = { credentials: { provider: string; material?: { accessKeyId?: string } }[] };
    const idOf = (text: string): string | undefined => (JSON.parse(text) as Doc).credentials.find((c) => c.provider === 'bedrock')?.material?.accessKeyId;
    const first = await eventually(async () => {
      const x = await get();
      return x.status === 200 && sts.calls.at(-1)?.accessKeyId === LONG_ID2 && idOf(x.text) === `ASIATEMP${sts.calls.filter((c) => c.signatureValid).length}` ? x : undefined;
    }, 10_000);
    expect(first).toBeDefined();
    const id1 = idOf(first!.text);
    // One long poll with the current ETag: nothing changes but the clock, and it answers 200 with new credentials.
    const r = await eventually(async () => {
      const x = await get(first!.etag, '&wait=30s');
      return x.status === 200 && idOf(x.text) !== id1 ? x : undefined;
    }, 60_000);
    expect(r).toBeDefined();
    expect(sts.calls.at(-1)).toMatchObject({ accessKeyId: LONG_ID2, signatureValid: true });
    for (const secret of [LONG_SECRET, LONG_SECRET2]) {
      expect(r!.text).not.toContain(secret);
      expect(lcp.logText()).not.toContain(secret);
    }
  }, 90_000);
});
