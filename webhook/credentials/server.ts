import { randomBytes } from 'node:crypto';
import { Counter, Registry } from 'prom-client';
import { LABEL_INJECT } from '../../shared/constants.js';
import { refId, resolveCredential, type CredentialMaterial, type RemoteMinters } from '../../shared/credentials/material.js';
import { VERTEX_REFRESH_BEFORE_MS, VertexTokenCache } from '../../shared/credentials/vertex-token.js';
import type { Logger } from '../../shared/log.js';
import { PROVIDER_IDS, type Credential, type EgressPolicy, type ProviderId } from '../../shared/policy/types.js';
import type { RouteRequest, RouteResponse } from '../server.js';
import type { TokenIdentity } from '../tokenreview.js';
import { bearerToken, HttpRefusal, refusingRoute, type Route } from '../policy/http.js';
import { etagOf, type PolicyStore } from '../policy/store.js';
import { DEFAULT_MAX_WAIT_MS, waitForCaller, waitParam } from '../long-poll.js';
import { CredentialMinter, type MintingOptions, type MintScope } from './minting.js';
import { ANNOTATION_CREDENTIAL_NAMESPACES, type CredentialSecrets } from './secrets.js';

// GET /v1/credentials?provider=openai&provider=bedrock[&wait=30s]: the managed credentials a proxy's namespace
// may use, over the same authenticated channel as its policy (ServiceAccount token → TokenReview; the namespace
// comes from the token, never from a parameter). A namespace gets only what its effective policy names, each
// from a Secret of the control plane's own namespace that allows it (annotation
// aigress.io/credential-namespaces). Long-lived secrets that can be exchanged never leave the control plane:
// the answer carries a Vertex AI access token minted here from the service-account key, STS temporary
// credentials for long-lived AWS keys (minting.ts), and an Entra ID access token for an app registration's
// client secret. Long poll as for the policy: with If-None-Match and `wait`, the answer
// waits for a Secret or policy change (or re-minted token) and otherwise says 304.

export interface CredentialServerOptions {
  store: PolicyStore;
  secrets: Pick<CredentialSecrets, 'get' | 'current' | 'waitForChange' | 'isSynced'>;
  identify(token: string): Promise<TokenIdentity>;
  log: Logger;
  registry?: Registry;
  maxWaitMs?: number;
  now?: () => number;
  /** STS and Entra ID endpoints and timings (the control plane's flags; tests point them at fakes). */
  minting?: MintingOptions;
}

/** One entry of the answer: the material, or why there is none (never a value). */
export interface CredentialEntry {
  provider: ProviderId;
  credential: Credential;
  material?: CredentialMaterial;
  error?: string;
}

/**
 * Pure: the entries `namespace` gets for the providers it asked for (all its policy names when it asked for
 * none). Throws 403 for a provider its effective policy names no credential for.
 */
export function credentialsFor(
  namespace: string,
  policy: EgressPolicy,
  asked: readonly string[],
  secrets: Pick<CredentialSecrets, 'get'>,
  mintVertex: VertexTokenCache['mint'],
  remote?: RemoteMinters,
): CredentialEntry[] {
  const named = new Map(policy.spec.credentials.map((c) => [c.provider as string, c]));
  const wanted = asked.length > 0 ? [...new Set(asked)] : [...named.keys()];
  const out: CredentialEntry[] = [];
  for (const p of wanted) {
    const c = named.get(p);
    if (!c) {
      throw new HttpRefusal(403, 'CredentialNotPermitted', `the effective policy of namespace ${namespace} names no managed credential for provider ${JSON.stringify(p)}`);
    }
    const s = secrets.get(c.secretRef.name);
    if (!s) {
      out.push({ provider: c.provider, credential: c, error: `no credential Secret ${c.secretRef.name} in the control plane's namespace (it needs the annotation ${ANNOTATION_CREDENTIAL_NAMESPACES})` });
      continue;
    }
    if (!s.allows(namespace)) {
      out.push({ provider: c.provider, credential: c, error: `Secret ${c.secretRef.name} does not allow namespace ${namespace} (annotation ${ANNOTATION_CREDENTIAL_NAMESPACES})` });
      continue;
    }
    const r = resolveCredential(c, (k) => s.data.get(k), mintVertex, remote);
    out.push('error' in r ? { provider: c.provider, credential: c, error: r.error } : { provider: c.provider, credential: c, material: r });
  }
  return out;
}

export function credentialRoutes(opts: CredentialServerOptions): Route[] {
  const maxWait = opts.maxWaitMs ?? DEFAULT_MAX_WAIT_MS;
  const registry = opts.registry ?? new Registry();
  const vertex = new VertexTokenCache(opts.now);
  const minter = new CredentialMinter({ ...opts.minting, log: opts.log, registry, now: opts.now });
  // The ETag is a hash over key material: salted per process, so it says nothing about a key (the cost: a proxy
  // that moves to another replica gets one 200 instead of a 304).
  const salt = randomBytes(16).toString('base64');
  const responses = new Counter({
    name: 'aigress_credential_responses_total',
    help: 'GET /v1/credentials answers, by HTTP status.',
    labelNames: ['code'],
    registers: [registry],
  });

  async function answer(req: RouteRequest): Promise<RouteResponse> {
    const waitMs = waitParam(req, maxWait);
    const asked = req.url.searchParams.getAll('provider');
    const unknown = asked.find((p) => !(PROVIDER_IDS as readonly string[]).includes(p));
    if (unknown !== undefined) throw new HttpRefusal(400, 'BadRequest', `unknown provider ${JSON.stringify(unknown)}`);
    const who = await opts.identify(bearerToken(req));
    if (!opts.store.isSynced() || !opts.secrets.isSynced()) throw new HttpRefusal(503, 'Starting', 'the control plane is still loading policies', { 'retry-after': '2' });

    const compute = (scope = minter.scope()): { body: string; etag: string; policyEtag: string; entries: CredentialEntry[]; scope: MintScope } => {
      const entry = opts.store.get(who.namespace);
      if (!entry) throw new HttpRefusal(403, 'NamespaceNotEnabled', `namespace ${who.namespace} is not opted in (label it ${LABEL_INJECT}=enabled)`);
      if (entry.kind === 'unavailable') throw new HttpRefusal(503, 'PolicyUnavailable', entry.message, { 'retry-after': '10' });
      const entries = credentialsFor(who.namespace, entry.policy, asked, opts.secrets, vertex.mint, scope.remote);
      const body = JSON.stringify({ credentials: entries });
      return { body, etag: etagOf(`${salt}\n${body}`), policyEtag: entry.etag, entries, scope };
    };

    // A credential that needs minting (first use, or due for refresh) is minted before the answer: STS and Entra
    // ID answer within the minter's timeout, and a failed refresh answers with the last good credentials.
    const computeMinted = async (): Promise<ReturnType<typeof compute>> => {
      const first = compute();
      const pending = first.scope.pending();
      if (!pending) return first;
      await pending;
      return compute(first.scope);
    };

    const known = req.headers['if-none-match'];
    let r = await computeMinted();
    if (known === r.etag && waitMs > 0) {
      const version = opts.secrets.current();
      // Wake on a credential Secret change, a policy change of this namespace, or when a token or STS credentials
      // are due to be re-minted (a second late, so they are due when it wakes).
      const now = (opts.now ?? Date.now)();
      const remint = r.entries.map((e) => (e.provider === 'vertex-ai' && e.material?.kind === 'bearer' && e.material.expiresAt !== undefined ? e.material.expiresAt - VERTEX_REFRESH_BEFORE_MS + 1000 - now : waitMs));
      const due = r.scope.nextDue();
      if (due !== undefined) remint.push(due - now + 1000);
      const refreshIn = Math.max(1000, Math.min(waitMs, ...remint));
      const { policyEtag } = r;
      // The signal ends the losing wait too, as soon as the other one wins.
      const present = await waitForCaller(req, (signal) =>
        Promise.race([opts.secrets.waitForChange(version, refreshIn, signal), opts.store.waitForChange(who.namespace, policyEtag, refreshIn, signal)]),
      );
      if (!present) return { status: 499 };
      r = await computeMinted();
    }
    const headers = { etag: r.etag, 'cache-control': 'no-store' };
    if (known === r.etag) return { status: 304, headers, text: '' };
    const missing = r.entries.filter((e) => e.error);
    if (missing.length > 0) {
      opts.log.warn({ namespace: who.namespace, serviceAccount: who.serviceAccount, unavailable: missing.map((e) => `${e.provider}:${refId(e.credential.secretRef)}`) }, 'managed credentials unavailable; calls that need them are refused');
    }
    opts.log.info({ namespace: who.namespace, serviceAccount: who.serviceAccount, providers: r.entries.filter((e) => e.material).map((e) => e.provider) }, 'credentials served');
    return { status: 200, headers: { ...headers, 'content-type': 'application/json' }, text: r.body };
  }

  return [refusingRoute('/v1/credentials', answer, { log: opts.log, responses, what: 'credentials' })];
}
