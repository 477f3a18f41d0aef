import { createHash } from 'node:crypto';
import type { AuthenticationV1Api, V1TokenReview } from '@kubernetes/client-node';
import { TOKEN_AUDIENCE } from '../shared/constants.js';
import { systemClock, type Clock } from '../shared/renewal.js';
import { apiErrorMessage } from './kube.js';
import { HttpRefusal } from './policy/http.js';

// Who is calling the issuer and the policy endpoint: the proxy sends its pod's projected ServiceAccount token
// (audience `aigress`), and the API server says whose it is (TokenReview). The token itself is never logged or
// kept; the cache is keyed by its SHA-256.

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
  maxEntries?: number;
  clock?: Clock;
}

/** TokenReview with a short positive cache and one in-flight review per token. */
export class TokenReviewer {
  private readonly cache = new Map<string, { at: number; identity: TokenIdentity }>();
  private readonly inflight = new Map<string, Promise<ReviewOutcome>>();
  private readonly audience: string;
  private readonly ttl: number;
  private readonly max: number;
  private readonly clock: Clock;

  constructor(
    private readonly authn: AuthenticationV1Api,
    opts: TokenReviewerOptions = {},
  ) {
    this.audience = opts.audience ?? TOKEN_AUDIENCE;
    this.ttl = opts.cacheTtlMs ?? 60_000;
    this.max = opts.maxEntries ?? 10_000;
    this.clock = opts.clock ?? systemClock;
  }

  /** The caller's identity, or an HttpRefusal: 401 (no/invalid token), 403 (not a ServiceAccount), 503 (API down). */
  async identify(token: string): Promise<TokenIdentity> {
    const key = createHash('sha256').update(token).digest('hex');
    const hit = this.cache.get(key);
    if (hit && this.clock.now() - hit.at < this.ttl) return hit.identity;
    let p = this.inflight.get(key);
    if (!p) {
      p = this.review(token).finally(() => this.inflight.delete(key));
      this.inflight.set(key, p);
    }
    const out = await p;
    if (!out.ok) throw new HttpRefusal(out.status, out.status === 401 ? 'Unauthenticated' : 'Forbidden', out.message);
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
