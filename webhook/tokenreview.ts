import { createHash } from 'node:crypto';
import type { AuthenticationV1Api, V1TokenReview } from '@kubernetes/client-node';
import { TOKEN_AUDIENCE } from '../shared/constants.js';
import { systemClock, type Clock } from '../shared/renewal.js';
import { apiErrorMessage } from './kube.js';
import { HttpRefusal } from './policy/http.js';
import { RateLimiter } from './rate-limit.js';

// Who is calling the issuer and the policy endpoint: the proxy sends its pod's projected ServiceAccount token
// (audience `aigress`), and the API server says whose it is (TokenReview). The token itself is never logged or
// kept; the caches are keyed by its SHA-256.

function refusal(r: { status: 401 | 403; message: string }): HttpRefusal {
  return new HttpRefusal(r.status, r.status === 401 ? 'Unauthenticated' : 'Forbidden', r.message);
}

export interface TokenIdentity {
  namespace: string;
  serviceAccount: string;
  podName?: string;
  podUid?: string;
}

export type ReviewOutcome = { ok: true; identity: TokenIdentity } | { ok: false; status: 401 | 403; message: string };

const SA_USER = /^system:serviceaccount:([a-z0-9]([-a-z0-9]*[a-z0-9])?):([a-z0-9]([-a-z0-9.]*[a-z0-9])?)$/;

/** Reads a TokenReview answer: authenticated, for our audience, and a ServiceAccount (not a person). */
export function identityFromReview(review: V1TokenReview, audience = TOKEN_AUDIENCE): ReviewOutcome {
  const s = review.status;
  if (!s?.authenticated) return { ok: false, status: 401, message: `token rejected by TokenReview${s?.error ? `: ${s.error}` : ''}` };
  // An API server that ignores audiences answers without them; such a token could be meant for anyone.
  if (!s.audiences?.includes(audience)) return { ok: false, status: 401, message: `token is not for audience ${audience}` };
  const m = SA_USER.exec(s.user?.username ?? '');
  if (!m) return { ok: false, status: 403, message: `token of ${JSON.stringify(s.user?.username ?? '')} is not a ServiceAccount token` };
  const identity: TokenIdentity = { namespace: m[1]!, serviceAccount: m[3]! };
  const podName = s.user?.extra?.['authentication.kubernetes.io/pod-name']?.[0];
  const podUid = s.user?.extra?.['authentication.kubernetes.io/pod-uid']?.[0];
  if (podName) identity.podName = podName;
  if (podUid) identity.podUid = podUid;
  return { ok: true, identity };
}

export interface TokenReviewerOptions {
  audience?: string;
  /** How long a positive answer is reused: each proxy long-polls every ~30 s; one review per minute is plenty. */
  cacheTtlMs?: number;
  /** How long a refusal (401/403) is reused: garbage tokens must not cost one API-server call each. */
  negativeTtlMs?: number;
  maxEntries?: number;
  /**
   * Reviews of tokens not in the cache, per source address: `burst` at once, `perSecond` after. An honest proxy
   * needs one a minute (its token is then cached); a flood of made-up tokens from one pod is answered 429
   * without reaching the API server, while cached callers are not limited at all.
   */
  sourceLimit?: { burst: number; perSecond: number };
  clock?: Clock;
}

export const NEGATIVE_TTL_MS = 10_000;
export const SOURCE_LIMIT = { burst: 10, perSecond: 1 } as const;

/**
 * TokenReview with a short positive cache, a shorter negative one, one in-flight review per token, and a
 * per-source limit on reviews of unknown tokens.
 */
export class TokenReviewer {
  private readonly cache = new Map<string, { at: number; identity: TokenIdentity }>();
  private readonly refused = new Map<string, { at: number; status: 401 | 403; message: string }>();
  private readonly inflight = new Map<string, Promise<ReviewOutcome>>();
  private readonly audience: string;
  private readonly ttl: number;
  private readonly negativeTtl: number;
  private readonly max: number;
  private readonly clock: Clock;
  private readonly sources: RateLimiter;

  constructor(
    private readonly authn: AuthenticationV1Api,
    opts: TokenReviewerOptions = {},
  ) {
    this.audience = opts.audience ?? TOKEN_AUDIENCE;
    this.ttl = opts.cacheTtlMs ?? 60_000;
    this.negativeTtl = opts.negativeTtlMs ?? NEGATIVE_TTL_MS;
    this.max = opts.maxEntries ?? 10_000;
    this.clock = opts.clock ?? systemClock;
    const limit = opts.sourceLimit ?? SOURCE_LIMIT;
    this.sources = new RateLimiter(limit.burst, limit.perSecond, this.clock);
  }

  /**
   * The caller's identity, or an HttpRefusal: 401 (no/invalid token), 403 (not a ServiceAccount), 429 (too many
   * unknown tokens from `source`), 503 (API down).
   */
  async identify(token: string, source?: string): Promise<TokenIdentity> {
    const key = createHash('sha256').update(token).digest('hex');
    const now = this.clock.now();
    const hit = this.cache.get(key);
    if (hit && now - hit.at < this.ttl) return hit.identity;
    const no = this.refused.get(key);
    if (no && now - no.at < this.negativeTtl) throw refusal(no);
    let p = this.inflight.get(key);
    if (!p) {
      const wait = source === undefined ? 0 : this.sources.take(source);
      if (wait > 0) {
        throw new HttpRefusal(429, 'RateLimited', 'too many unknown tokens from this address', { 'retry-after': String(wait) });
      }
      p = this.review(token).finally(() => this.inflight.delete(key));
      this.inflight.set(key, p);
    }
    const out = await p;
    if (!out.ok) {
      if (this.refused.size >= this.max) this.refused.clear();
      this.refused.set(key, { at: this.clock.now(), status: out.status, message: out.message });
      throw refusal(out);
    }
    this.refused.delete(key);
    if (this.cache.size >= this.max) this.cache.clear(); // bounded; a refill costs one review per proxy
    this.cache.set(key, { at: this.clock.now(), identity: out.identity });
    return out.identity;
  }

  private async review(token: string): Promise<ReviewOutcome> {
    let review: V1TokenReview;
    try {
      review = await this.authn.createTokenReview({
        body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences: [this.audience] } },
      });
    } catch (err) {
      throw new HttpRefusal(503, 'Unavailable', `cannot review the token: ${apiErrorMessage(err)}`, { 'retry-after': '5' });
    }
    return identityFromReview(review, this.audience);
  }
}
