import { JWTAccess } from 'google-auth-library';

// Vertex AI access tokens from a service-account key, minted locally with no network call: a self-signed JWT
// (RS256, signed with the key, `scope` cloud-platform, one hour), which Google APIs accept as an OAuth2 access
// token for service accounts ("self-signed JWT", google-auth-library's JWTAccess; AIP-4111). The token endpoint
// (oauth2.googleapis.com) is never called, so there is nothing to fake or reach in tests, and in the cluster the
// control plane mints while the proxy only ever sees the token. Tokens are re-minted well before they expire.

export const VERTEX_SCOPE = 'https://www.googleapis.com/auth/cloud-platform';
/** JWTAccess signs tokens valid for one hour. */
const LIFETIME_MS = 3_600_000;
/** Re-mint when less than this is left: a token is never used in its last 20 minutes. */
export const VERTEX_REFRESH_BEFORE_MS = 20 * 60_000;

interface ServiceAccountKey {
  type?: string;
  client_email: string;
  private_key: string;
  private_key_id?: string;
}

function parseKey(json: string): ServiceAccountKey {
  let k: unknown;
  try {
    k = JSON.parse(json);
  } catch {
    throw new Error('not JSON');
  }
  const o = k as Partial<ServiceAccountKey>;
  if (typeof o !== 'object' || o === null || typeof o.client_email !== 'string' || typeof o.private_key !== 'string') {
    throw new Error('needs client_email and private_key (a service-account key file)');
  }
  if (o.type !== undefined && o.type !== 'service_account') throw new Error(`type is ${JSON.stringify(o.type)}, not service_account`);
  return o as ServiceAccountKey;
}

/** One fresh token for a key. Throws on a malformed key (the message never contains it). */
export function mintVertexToken(json: string, now: number = Date.now()): { token: string; expiresAt: number } {
  const key = parseKey(json);
  // eagerRefreshThresholdMillis 0 and a new instance per mint: the cache below decides when to re-mint.
  const access = new JWTAccess(key.client_email, key.private_key, key.private_key_id ?? null, 0);
  let auth: string | null;
  try {
    auth = access.getRequestHeaders(undefined, undefined, VERTEX_SCOPE).get('authorization');
  } catch {
    throw new Error('the private key cannot sign (not an RSA private key in PEM)');
  }
  if (!auth?.startsWith('Bearer ')) throw new Error('no token was signed');
  const token = auth.slice('Bearer '.length);
  let expiresAt = now + LIFETIME_MS;
  try {
    const exp = (JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { exp?: number }).exp;
    if (typeof exp === 'number') expiresAt = exp * 1000;
  } catch {
    // keep the documented lifetime
  }
  return { token, expiresAt };
}

/** Tokens per key, re-minted when less than VERTEX_REFRESH_BEFORE_MS is left (or the key changed). */
export class VertexTokenCache {
  private readonly cache = new Map<string, { token: string; expiresAt: number }>();

  constructor(private readonly now: () => number = Date.now) {}

  /** A VertexMinter (material.ts). */
  readonly mint = (json: string): { token: string; expiresAt: number } => {
    const hit = this.cache.get(json);
    if (hit && hit.expiresAt - this.now() > VERTEX_REFRESH_BEFORE_MS) return hit;
    const fresh = mintVertexToken(json, this.now());
    // Bounded: one entry per key in use; a rotated key's entry goes when the cache is pruned.
    if (this.cache.size > 64) this.cache.clear();
    this.cache.set(json, fresh);
    return fresh;
  };

  /** Forgets keys no longer in use. */
  retain(keys: Iterable<string>): void {
    const keep = new Set(keys);
    for (const k of this.cache.keys()) if (!keep.has(k)) this.cache.delete(k);
  }
}
