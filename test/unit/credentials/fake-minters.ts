// Fake AWS STS and Entra ID token endpoints: they check what a real one checks (STS: the SigV4 signature over
// the call, recomputed with aws4 from the long-lived keys; Entra: the client-credentials form) and answer with
// fresh short-lived credentials, numbered, so a test can tell a refresh from a cached answer.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import aws4 from 'aws4';

export interface StsCall {
  action: string | null;
  params: URLSearchParams;
  accessKeyId: string;
  signatureValid: boolean;
  /** The fake clock when the call arrived. */
  at: number;
}

export interface FakeSts {
  url: string;
  calls: StsCall[];
  /** When set, the answer is this status with an AWS error document (the message included). */
  fail?: { status: number; code: string; message: string };
  /** Lifetime of the credentials it issues (ms). */
  lifetimeMs: number;
  /** When set, answers wait for it (a slow STS). */
  hold?: Promise<void>;
  close(): Promise<void>;
}

export interface EntraCall {
  tenant: string;
  form: URLSearchParams;
  at: number;
}

export interface FakeEntra {
  url: string;
  calls: EntraCall[];
  fail?: { status: number; error: string; description: string };
  lifetimeS: number;
  close(): Promise<void>;
}

const body = (req: IncomingMessage): Promise<string> =>
  new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const close = (server: Server) => (): Promise<void> => new Promise((resolve) => server.close(() => resolve()));

/** `keys`: access key id → secret access key, the long-lived keys STS knows. */
export async function startFakeSts(opts: { keys: Record<string, string>; region: string; now: () => number; lifetimeMs?: number }): Promise<FakeSts> {
  let n = 0;
  const fake: FakeSts = {
    url: '',
    calls: [],
    lifetimeMs: opts.lifetimeMs ?? 3_600_000,
    close: async () => undefined,
  };
  const server = createServer((req, res) => {
    void body(req).then(async (text) => {
      if (fake.hold) await fake.hold;
      const params = new URLSearchParams(text);
      const auth = req.headers.authorization ?? '';
      const accessKeyId = /Credential=([^/]+)\//.exec(auth)?.[1] ?? '';
      const signed = (/SignedHeaders=([^,]+)/.exec(auth)?.[1] ?? '').split(';');
      const headers = Object.fromEntries(signed.map((h) => [h, String(req.headers[h] ?? '')]));
      const secret = opts.keys[accessKeyId];
      let signatureValid = false;
      if (secret !== undefined && signed.includes('host') && signed.includes('x-amz-date')) {
        const again = aws4.sign(
          { host: headers.host, method: req.method, path: req.url, headers, body: text, service: 'sts', region: opts.region },
          { accessKeyId, secretAccessKey: secret, ...(req.headers['x-amz-security-token'] && { sessionToken: String(req.headers['x-amz-security-token']) }) },
        );
        signatureValid = (again.headers as Record<string, string>).Authorization === auth;
      }
      fake.calls.push({ action: params.get('Action'), params, accessKeyId, signatureValid, at: opts.now() });
      const error = (status: number, code: string, message: string): void => {
        res.writeHead(status, { 'content-type': 'text/xml' });
        res.end(`<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>${code}</Code><Message>${message}</Message></Error><RequestId>r</RequestId></ErrorResponse>`);
      };
      if (!signatureValid) return error(403, 'SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided.');
      if (fake.fail) return error(fake.fail.status, fake.fail.code, fake.fail.message);
      const action = params.get('Action');
      if (params.get('Version') !== '2011-06-15' || (action !== 'GetSessionToken' && action !== 'AssumeRole')) return error(400, 'InvalidAction', 'unknown action');
      n++;
      const expiration = new Date(opts.now() + fake.lifetimeMs).toISOString();
      const tag = action === 'AssumeRole' ? 'AssumeRole' : 'GetSessionToken';
      res.writeHead(200, { 'content-type': 'text/xml' });
      res.end(
        `<${tag}Response xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><${tag}Result>` +
          (action === 'AssumeRole' ? `<AssumedRoleUser><Arn>${params.get('RoleArn')}/${params.get('RoleSessionName')}</Arn><AssumedRoleId>AROA:x</AssumedRoleId></AssumedRoleUser>` : '') +
          `<Credentials><SessionToken>FwoTEMPTOKEN${n}/a+b=&amp;c</SessionToken><SecretAccessKey>tempSecret${n}</SecretAccessKey>` +
          `<Expiration>${expiration}</Expiration><AccessKeyId>ASIATEMP${n}</AccessKeyId></Credentials></${tag}Result>` +
          `<ResponseMetadata><RequestId>r${n}</RequestId></ResponseMetadata></${tag}Response>`,
      );
    });
  });
  fake.url = `${await listen(server)}/`;
  fake.close = close(server);
  return fake;
}

/** `apps`: client id → client secret, per tenant the same. */
export async function startFakeEntra(opts: { apps: Record<string, string>; now: () => number }): Promise<FakeEntra> {
  let n = 0;
  const fake: FakeEntra = { url: '', calls: [], lifetimeS: 3599, close: async () => undefined };
  const server = createServer((req, res) => {
    void body(req).then((text) => {
      const form = new URLSearchParams(text);
      const m = /^\/([^/]+)\/oauth2\/v2\.0\/token$/.exec(req.url ?? '');
      fake.calls.push({ tenant: m?.[1] ?? '', form, at: opts.now() });
      const answer = (status: number, doc: unknown): void => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(doc));
      };
      if (!m || req.method !== 'POST') return answer(404, { error: 'not_found' });
      if (fake.fail) return answer(fake.fail.status, { error: fake.fail.error, error_description: fake.fail.description });
      const id = form.get('client_id') ?? '';
      if (form.get('grant_type') !== 'client_credentials' || form.get('scope') !== 'https://cognitiveservices.azure.com/.default') {
        return answer(400, { error: 'invalid_request', error_description: 'AADSTS900144: grant_type or scope' });
      }
      if (opts.apps[id] === undefined || opts.apps[id] !== form.get('client_secret')) {
        return answer(401, { error: 'invalid_client', error_description: `AADSTS7000215: Invalid client secret provided for app '${id}'.\r\nTrace ID: t` });
      }
      n++;
      answer(200, { token_type: 'Bearer', expires_in: fake.lifetimeS, ext_expires_in: fake.lifetimeS, access_token: `eyENTRA.${m[1]}.${n}` });
    });
  });
  fake.url = await listen(server);
  fake.close = close(server);
  return fake;
}
