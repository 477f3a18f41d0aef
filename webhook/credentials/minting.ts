import { createHash } from 'node:crypto';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { SignatureV4 } from '@smithy/signature-v4';
import { Counter, Registry } from 'prom-client';
import type { CredentialMaterial, RemoteMinters, Unresolved } from '../../shared/credentials/material.js';
import { NodeSha256 } from '../../shared/credentials/sha256.js';
import { errorMessage } from '../../shared/errors.js';
import type { Logger } from '../../shared/log.js';
import type { Credential, ProviderId } from '../../shared/policy/types.js';

// Short-lived credentials minted by the control plane, so that long-lived secrets never reach a proxy:
// - bedrock: long-lived AWS keys are exchanged with STS (GetSessionToken, or AssumeRole when the credential
//   names a role) for temporary credentials;
// - azure-openai (azureAuth entra, with tenantIdKey and clientIdKey): an Entra ID access token from the app
//   registration's client secret (OAuth2 client-credentials flow).
// Lookups are synchronous and answer from what has been minted; a mint that is missing or due starts in the
// background, and the credential endpoint awaits `pending()` before it answers. A failed refresh keeps the last
// good credentials until they expire (and is logged and counted); retries back off. The endpoints are the
// control plane's settings (flags), never a policy's: a policy cannot send keys to a URL of its choosing.

export const STS_DEFAULT_ENDPOINT = 'https://sts.amazonaws.com/';
export const ENTRA_DEFAULT_AUTHORITY = 'https://login.microsoftonline.com';
export const ENTRA_SCOPE = 'https://cognitiveservices.azure.com/.default';
const STS_VERSION = '2011-06-15';
/** Re-mint when less than this is left (at most half the lifetime): a proxy never holds credentials about to lapse. */
export const MINT_REFRESH_BEFORE_MS = 15 * 60_000;
const MAX_ANSWER_BYTES = 64 * 1024;
const RETRY_FIRST_MS = 2000;
const RETRY_MAX_MS = 60_000;

export interface MintingOptions {
  /** STS endpoint (test or private endpoints). Default: https://sts.<stsRegion>.amazonaws.com/ with stsRegion, else the global one. */
  stsEndpoint?: string;
  /** SigV4 signing region of the STS call (default us-east-1, the global endpoint's). */
  stsRegion?: string;
  /** Lifetime asked of STS, in seconds (default 3600; STS allows 900 and up). */
  stsDurationSeconds?: number;
  /** Entra ID authority, the token URL's base (default https://login.microsoftonline.com; sovereign clouds and tests). */
  entraAuthority?: string;
  /** Re-mint when less than this is left (default 15 min, at most half of a lifetime). */
  refreshBeforeMs?: number;
  /** Per call to STS or Entra ID (default 10 s). */
  timeoutMs?: number;
}

/** Lookups for one answer, with the mints and refreshes of just the credentials they touched. */
export interface MintScope {
  remote: RemoteMinters;
  pending(): Promise<void> | undefined;
  nextDue(): number | undefined;
}

interface Minted {
  material: CredentialMaterial;
  expiresAt: number;
}

interface Slot {
  provider: ProviderId;
  good?: Minted;
  refreshAt: number;
  inflight?: Promise<void>;
  failures: number;
  retryAt: number;
  lastError?: string;
  lastUsed: number;
}

/** An HTTP(S) POST of a form, with a deadline and a bounded answer; no redirects are followed. */
function postForm(url: URL, headers: Record<string, string>, body: string, timeoutMs: number): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const send = url.protocol === 'http:' ? httpRequest : httpsRequest;
    const req = send(url, { method: 'POST', headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) } }, (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_ANSWER_BYTES) {
          req.destroy(new Error(`answer larger than ${MAX_ANSWER_BYTES} bytes`));
          return;
        }
        chunks.push(c);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    // A timer the call holds (not AbortSignal.timeout, which a GC may collect before it fires on Node 20).
    const timer = setTimeout(() => req.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    req.on('error', reject);
    req.on('close', () => clearTimeout(timer));
    req.end(body);
  });
}

const XML_ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

/** The text of the first `<tag>…</tag>` inside `xml` (no nested elements), entities decoded; undefined when absent. */
export function xmlText(xml: string, tag: string): string | undefined {
  const m = new RegExp(`<${tag}(?:\\s[^>]*)?>([^<]*)</${tag}>`).exec(xml);
  if (!m) return undefined;
  return m[1]!.replace(/&(#x[0-9a-fA-F]+|#\d+|[a-z]+);/g, (all, e: string) => {
    if (e.startsWith('#x')) return String.fromCodePoint(parseInt(e.slice(2), 16));
    if (e.startsWith('#')) return String.fromCodePoint(parseInt(e.slice(1), 10));
    return XML_ENTITIES[e] ?? all;
  }).trim();
}

/** The inner XML of the first `<tag>…</tag>` element. */
function xmlElement(xml: string, tag: string): string | undefined {
  const m = new RegExp(`<${tag}(?:\\s[^>]*)?>([\\s\\S]*?)</${tag}>`).exec(xml);
  return m?.[1];
}

const isControl = (ch: string): boolean => ch.charCodeAt(0) < 0x20 || ch.charCodeAt(0) === 0x7f;
const usable = (v: string | undefined): v is string => v !== undefined && v !== '' && ![...v].some(isControl);

/** What an STS answer says: the temporary credentials, or throws with AWS's error code and message. */
export function parseStsAnswer(status: number, xml: string): Minted {
  if (status !== 200) {
    const code = xmlText(xml, 'Code');
    const message = xmlText(xml, 'Message');
    throw new Error(`STS answered ${status}${code ? ` ${code}` : ''}${message ? `: ${message}` : ''}`);
  }
  const creds = xmlElement(xml, 'Credentials');
  if (creds === undefined) throw new Error('STS answered 200 without Credentials');
  const accessKeyId = xmlText(creds, 'AccessKeyId');
  const secretAccessKey = xmlText(creds, 'SecretAccessKey');
  const sessionToken = xmlText(creds, 'SessionToken');
  const expiration = xmlText(creds, 'Expiration');
  const expiresAt = expiration === undefined ? NaN : Date.parse(expiration);
  if (!usable(accessKeyId) || !usable(secretAccessKey) || !usable(sessionToken) || !Number.isFinite(expiresAt)) {
    throw new Error('STS answered 200 without AccessKeyId, SecretAccessKey, SessionToken and Expiration');
  }
  return { material: { kind: 'aws', accessKeyId, secretAccessKey, sessionToken, expiresAt }, expiresAt };
}

/** What an Entra ID token endpoint says: the access token, or throws with its error and description. */
export function parseEntraAnswer(status: number, text: string, now: number): Minted {
  let doc: Record<string, unknown> = {};
  try {
    const v: unknown = JSON.parse(text);
    if (typeof v === 'object' && v !== null) doc = v as Record<string, unknown>;
  } catch {
    // an answer that is not JSON is reported by its status
  }
  if (status !== 200) {
    const err = typeof doc.error === 'string' ? ` ${doc.error}` : '';
    const desc = typeof doc.error_description === 'string' ? `: ${doc.error_description.split(/\r?\n/)[0]}` : '';
    throw new Error(`Entra ID answered ${status}${err}${desc}`);
  }
  const token = doc.access_token;
  const expiresIn = typeof doc.expires_in === 'string' ? Number(doc.expires_in) : doc.expires_in;
  if (typeof token !== 'string' || !usable(token) || typeof expiresIn !== 'number' || !Number.isFinite(expiresIn) || expiresIn <= 0) {
    throw new Error('Entra ID answered 200 without access_token and expires_in');
  }
  const expiresAt = now + expiresIn * 1000;
  return { material: { kind: 'bearer', token, expiresAt }, expiresAt };
}

/** An error message safe to log and serve: no value it was computed from, no control characters, bounded. */
function clean(message: string, secrets: readonly string[]): string {
  let m = message;
  for (const s of secrets) if (s.length >= 4) m = m.split(s).join('[redacted]');
  m = [...m].map((ch) => (isControl(ch) ? ' ' : ch)).join('');
  return m.length > 300 ? `${m.slice(0, 300)}…` : m;
}

/** An Entra tenant: a GUID or a domain name; nothing that could change the token URL's path or host. */
const TENANT = /^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/;

export class CredentialMinter {
  private readonly slots = new Map<string, Slot>();
  private readonly now: () => number;
  private readonly log: Logger;
  private readonly sts: URL;
  private readonly stsRegion: string;
  private readonly stsDuration: number;
  private readonly entra: string;
  private readonly refreshBefore: number;
  private readonly timeoutMs: number;
  private readonly mints: Counter<'provider' | 'result'>;

  constructor(opts: MintingOptions & { log: Logger; registry?: Registry; now?: () => number }) {
    this.now = opts.now ?? Date.now;
    this.log = opts.log;
    this.stsRegion = opts.stsRegion ?? 'us-east-1';
    this.sts = new URL(opts.stsEndpoint ?? (opts.stsRegion ? `https://sts.${opts.stsRegion}.amazonaws.com/` : STS_DEFAULT_ENDPOINT));
    this.stsDuration = opts.stsDurationSeconds ?? 3600;
    this.entra = (opts.entraAuthority ?? ENTRA_DEFAULT_AUTHORITY).replace(/\/+$/, '');
    this.refreshBefore = opts.refreshBeforeMs ?? MINT_REFRESH_BEFORE_MS;
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.mints = new Counter({
      name: 'aigress_credential_mints_total',
      help: 'Short-lived credentials minted by the control plane (STS, Entra ID), by provider and result (ok, error).',
      labelNames: ['provider', 'result'],
      registers: [opts.registry ?? new Registry()],
    });
  }

  /** The lookups resolveCredential takes (shared/credentials/material.ts), over every credential minted here. */
  readonly remote: RemoteMinters = this.lookups();

  /**
   * Lookups that remember which credentials they touched, so one answer waits only for its own mints and wakes
   * only for its own refreshes (another namespace's slow STS call does not hold it up).
   */
  scope(): MintScope {
    const touched = new Set<Slot>();
    return { remote: this.lookups(touched), pending: () => this.pendingOf(touched), nextDue: () => this.nextDueOf(touched) };
  }

  /** Resolves when every mint under way has finished (or failed); undefined when none is. */
  pending(): Promise<void> | undefined {
    return this.pendingOf(this.slots.values());
  }

  /** When the next refresh or retry of a recently used credential is due (ms since the epoch), if any. */
  nextDue(): number | undefined {
    return this.nextDueOf(this.slots.values());
  }

  private lookups(touched?: Set<Slot>): RemoteMinters {
    return {
      aws: (c, keys) => {
        const id = ['aws', c.roleArn ?? '', c.roleSessionName ?? '', keys.accessKeyId, keys.secretAccessKey, keys.sessionToken ?? ''];
        return this.lookup('bedrock', id, [keys.secretAccessKey, ...(keys.sessionToken ? [keys.sessionToken] : [])], () => this.callSts(c, keys), touched);
      },
      entra: (c, app) => {
        if (!TENANT.test(app.tenantId)) return { error: `the tenant in ${c.secretRef.name}/${c.tenantIdKey ?? ''} is not a tenant id or domain name` };
        return this.lookup('azure-openai', ['entra', app.tenantId, app.clientId, app.clientSecret], [app.clientSecret], () => this.callEntra(app), touched);
      },
    };
  }

  private pendingOf(slots: Iterable<Slot>): Promise<void> | undefined {
    const all = [...slots].flatMap((s) => (s.inflight ? [s.inflight] : []));
    return all.length > 0 ? Promise.all(all).then(() => undefined) : undefined;
  }

  private nextDueOf(slots: Iterable<Slot>): number | undefined {
    const now = this.now();
    let due: number | undefined;
    for (const s of slots) {
      if (s.inflight || now - s.lastUsed > 5 * 60_000) continue;
      const t = s.good && now < s.good.expiresAt ? Math.max(s.refreshAt, s.retryAt) : s.retryAt;
      if (t > 0 && (due === undefined || t < due)) due = t;
    }
    return due;
  }

  private lookup(provider: ProviderId, id: readonly string[], secrets: readonly string[], mint: () => Promise<Minted>, touched?: Set<Slot>): CredentialMaterial | Unresolved {
    // Keyed by a hash: a rotated secret is a new slot, and the map holds no key in clear as its index.
    const key = createHash('sha256').update(JSON.stringify(id)).digest('base64');
    const now = this.now();
    let slot = this.slots.get(key);
    if (!slot) {
      this.prune(now);
      slot = { provider, refreshAt: 0, failures: 0, retryAt: 0, lastUsed: now };
      this.slots.set(key, slot);
    }
    slot.lastUsed = now;
    touched?.add(slot);
    const valid = slot.good !== undefined && now < slot.good.expiresAt;
    if ((!valid || now >= slot.refreshAt) && !slot.inflight && now >= slot.retryAt) this.start(slot, secrets, mint);
    if (valid) return slot.good!.material;
    return { error: slot.inflight ? 'short-lived credentials are being minted' : `minting short-lived credentials failed: ${slot.lastError ?? 'unknown error'}` };
  }

  private start(slot: Slot, secrets: readonly string[], mint: () => Promise<Minted>): void {
    const p = (async (): Promise<void> => {
      try {
        const m = await mint();
        const now = this.now();
        slot.good = m;
        slot.refreshAt = m.expiresAt - Math.min(this.refreshBefore, (m.expiresAt - now) / 2);
        slot.failures = 0;
        slot.retryAt = 0;
        slot.lastError = undefined;
        this.mints.inc({ provider: slot.provider, result: 'ok' });
        this.log.info({ provider: slot.provider, expiresAt: new Date(m.expiresAt).toISOString() }, 'short-lived credentials minted');
      } catch (err) {
        const now = this.now();
        slot.failures++;
        slot.retryAt = now + Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** (slot.failures - 1));
        slot.lastError = clean(errorMessage(err), secrets);
        this.mints.inc({ provider: slot.provider, result: 'error' });
        const kept = slot.good && now < slot.good.expiresAt ? new Date(slot.good.expiresAt).toISOString() : undefined;
        this.log.warn(
          { provider: slot.provider, err: slot.lastError, failures: slot.failures, retryInMs: slot.retryAt - now, ...(kept && { keepingUntil: kept }) },
          kept ? 'minting short-lived credentials failed; proxies keep the last good ones until they expire' : 'minting short-lived credentials failed; calls that need them are refused',
        );
      } finally {
        slot.inflight = undefined;
      }
    })();
    slot.inflight = p;
  }

  /** Bounded: slots unused for an hour (a rotated key, a policy that changed) go. */
  private prune(now: number): void {
    if (this.slots.size < 64) return;
    for (const [k, s] of this.slots) if (!s.inflight && now - s.lastUsed > 3_600_000) this.slots.delete(k);
  }

  private async callSts(c: Credential, keys: { accessKeyId: string; secretAccessKey: string; sessionToken?: string }): Promise<Minted> {
    const params = new URLSearchParams(
      c.roleArn !== undefined
        ? { Action: 'AssumeRole', Version: STS_VERSION, RoleArn: c.roleArn, RoleSessionName: c.roleSessionName ?? 'aigress', DurationSeconds: String(this.stsDuration) }
        : { Action: 'GetSessionToken', Version: STS_VERSION, DurationSeconds: String(this.stsDuration) },
    );
    const body = params.toString();
    const url = this.sts;
    const signer = new SignatureV4({ credentials: keys, region: this.stsRegion, service: 'sts', sha256: NodeSha256, uriEscapePath: true, applyChecksum: false });
    const signed = await signer.sign({
      method: 'POST',
      protocol: url.protocol,
      hostname: url.hostname,
      ...(url.port && { port: Number(url.port) }),
      path: url.pathname,
      query: {},
      // The length is signed too, as the AWS SDK signs it.
      headers: { host: url.host, 'content-type': 'application/x-www-form-urlencoded; charset=utf-8', 'content-length': String(Buffer.byteLength(body)) },
      body,
    });
    const res = await postForm(url, signed.headers, body, this.timeoutMs);
    return parseStsAnswer(res.status, res.text);
  }

  private async callEntra(app: { tenantId: string; clientId: string; clientSecret: string }): Promise<Minted> {
    const url = new URL(`${this.entra}/${encodeURIComponent(app.tenantId)}/oauth2/v2.0/token`);
    const body = new URLSearchParams({ grant_type: 'client_credentials', client_id: app.clientId, client_secret: app.clientSecret, scope: ENTRA_SCOPE }).toString();
    const res = await postForm(url, { 'content-type': 'application/x-www-form-urlencoded' }, body, this.timeoutMs);
    return parseEntraAnswer(res.status, res.text, this.now());
  }
}
