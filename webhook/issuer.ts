import { Counter, Registry } from 'prom-client';
import { LABEL_INJECT } from '../shared/constants.js';
import type { Logger } from '../shared/log.js';
import type { ProviderId } from '../shared/policy/types.js';
import { readCsr, signCsr, type CertificateAuthority, type CsrFacts } from '../shared/pki.js';
import { systemClock, type Clock } from '../shared/renewal.js';
import { nameIssuable } from '../shared/certificate-names.js';
import { bearerToken, HttpRefusal, jsonBody, refusalResponse, type Route } from './policy/http.js';
import type { RouteRequest } from './server.js';
import type { PolicyStore } from './policy/store.js';
import type { TokenIdentity } from './tokenreview.js';

// The issuer: POST /v1/certificates turns a proxy's CSR into a short-lived server-auth leaf for the AI hosts of
// its namespace's effective policy; GET /v1/ca hands out the CA certificate (public). The proxy's key never
// leaves its pod; the CA's key never leaves this process.

/** Leaf lifetime cap: the issue says at most 24 h. */
export const MAX_LEAF_VALIDITY_MS = 24 * 3_600_000;
const MAX_NAMES = 200;
const MAX_BODY = 64 * 1024;

export type CsrDecision = { ok: true; names: string[] } | { ok: false; message: string };

/**
 * Whether a CSR may be signed for a namespace whose policy enables `providers`, and for which names. Pure.
 * Nothing of the CSR but its key and DNS names is ever used: subject, other extensions and attributes are
 * ignored, and the certificate's own extensions are set by the issuer.
 */
export function decideCsr(facts: CsrFacts, providers: readonly ProviderId[]): CsrDecision {
  if (!facts.signatureValid) return { ok: false, message: 'CSR signature does not verify' };
  if (facts.requestsCa) return { ok: false, message: 'CSR asks for CA rights (basicConstraints cA or keyCertSign); only leaf certificates are issued' };
  const ips = facts.otherNames.filter((n) => n.startsWith('ip:'));
  if (ips.length > 0) return { ok: false, message: `CSR asks for IP addresses (${ips.map((n) => n.slice(3)).join(', ')}); only DNS names are issued` };
  if (facts.otherNames.length > 0) return { ok: false, message: `CSR asks for names other than DNS names (${facts.otherNames.join(', ')})` };
  if (facts.keyAlgorithm !== 'ECDSA P-256') return { ok: false, message: `CSR key is ${facts.keyAlgorithm}; use ECDSA P-256` };
  const names = [...new Set(facts.dnsNames)];
  if (names.length === 0) return { ok: false, message: 'CSR has no DNS names (put the hosts in subjectAltName)' };
  if (names.length > MAX_NAMES) return { ok: false, message: `CSR asks for ${names.length} names; at most ${MAX_NAMES}` };
  const outside = names.filter((n) => !nameIssuable(n, providers));
  if (outside.length > 0) {
    const shown = outside.slice(0, 5).map((n) => JSON.stringify(n)).join(', ') + (outside.length > 5 ? `, … (${outside.length} in all)` : '');
    return { ok: false, message: `CSR asks for names outside the namespace's policy (providers: ${providers.join(', ') || 'none'}): ${shown}` };
  }
  return { ok: true, names };
}

/** Token buckets per key (ServiceAccount): `burst` at once, refilled at `perSecond`. */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly burst: number,
    private readonly perSecond: number,
    private readonly clock: Clock = systemClock,
  ) {}

  /** 0 when allowed (and counted); otherwise the seconds to wait. */
  take(key: string): number {
    const now = this.clock.now();
    const b = this.buckets.get(key) ?? { tokens: this.burst, at: now };
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.perSecond);
    b.at = now;
    if (this.buckets.size > 50_000) this.buckets.clear(); // bounded memory; worst case a fresh burst
    this.buckets.set(key, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - b.tokens) / this.perSecond));
  }
}

export interface IssuerOptions {
  ca: CertificateAuthority;
  identify(token: string): Promise<TokenIdentity>;
  store: PolicyStore;
  log: Logger;
  registry?: Registry;
  /** Leaf lifetime, capped at 24 h. */
  leafValidityMs?: number;
  rateLimit?: { burst: number; perSecond: number };
  clock?: Clock;
}

export interface IssueResponse {
  certificate: string;
  ca: string;
  serial: string;
  notBefore: string;
  notAfter: string;
}

/** The issuer's routes, ready to mount on the control plane's HTTPS server. */
export function issuerRoutes(opts: IssuerOptions): Route[] {
  const clock = opts.clock ?? systemClock;
  const registry = opts.registry ?? new Registry();
  const validity = Math.min(opts.leafValidityMs ?? MAX_LEAF_VALIDITY_MS, MAX_LEAF_VALIDITY_MS);
  const limiter = new RateLimiter(opts.rateLimit?.burst ?? 20, opts.rateLimit?.perSecond ?? 2, clock);
  const issued = new Counter({ name: 'aigress_issuer_certificates_issued_total', help: 'Leaf certificates issued to proxies.', registers: [registry] });
  const refused = new Counter({
    name: 'aigress_issuer_requests_refused_total',
    help: 'Certificate requests refused, by reason.',
    labelNames: ['reason'],
    registers: [registry],
  });

  async function issue(req: RouteRequest): Promise<IssueResponse> {
    const who = await opts.identify(bearerToken(req));
    if (!opts.store.isSynced()) throw new HttpRefusal(503, 'Starting', 'the control plane is still loading policies', { 'retry-after': '2' });
    const entry = opts.store.get(who.namespace);
    if (!entry) {
      throw new HttpRefusal(403, 'NamespaceNotEnabled', `namespace ${who.namespace} is not opted in (label it ${LABEL_INJECT}=enabled)`);
    }
    if (entry.kind === 'unavailable') throw new HttpRefusal(503, 'PolicyUnavailable', entry.message, { 'retry-after': '10' });
    const wait = limiter.take(`${who.namespace}/${who.serviceAccount}`);
    if (wait > 0) {
      throw new HttpRefusal(429, 'RateLimited', `too many certificate requests for ServiceAccount ${who.namespace}/${who.serviceAccount}`, { 'retry-after': String(wait) });
    }
    const body = jsonBody(req);
    const csrPem = body.csr;
    if (typeof csrPem !== 'string' || !/^-----BEGIN CERTIFICATE REQUEST-----\r?\n[\s\S]+-----END CERTIFICATE REQUEST-----\s*$/.test(csrPem.trim() + '\n')) {
      throw new HttpRefusal(400, 'MalformedCSR', 'body must be {"csr": "<PEM CERTIFICATE REQUEST>"}');
    }
    let facts: CsrFacts;
    try {
      facts = await readCsr(csrPem);
    } catch (err) {
      throw new HttpRefusal(400, 'MalformedCSR', `malformed CSR: ${(err as Error).message}`);
    }
    const decision = decideCsr(facts, entry.policy.spec.providers);
    if (!decision.ok) throw new HttpRefusal(400, 'CSRRefused', decision.message);
    const leaf = await signCsr(opts.ca, csrPem, { dnsNames: decision.names, validityMs: validity, now: clock.now() });
    opts.log.info(
      {
        namespace: who.namespace,
        serviceAccount: who.serviceAccount,
        pod: who.podName,
        names: decision.names,
        serial: leaf.serial,
        notAfter: leaf.notAfter.toISOString(),
      },
      'leaf certificate issued',
    );
    issued.inc();
    return {
      certificate: leaf.certPem,
      ca: opts.ca.certPem,
      serial: leaf.serial,
      notBefore: leaf.notBefore.toISOString(),
      notAfter: leaf.notAfter.toISOString(),
    };
  }

  return [
    {
      method: 'POST',
      path: '/v1/certificates',
      options: {
        maxBodyBytes: MAX_BODY,
        onRejected: (status) => refused.inc({ reason: status === 413 ? 'TooLarge' : String(status) }),
      },
      handler: async (req) => {
        try {
          return { status: 201, headers: { 'cache-control': 'no-store' }, json: await issue(req) };
        } catch (err) {
          if (!(err instanceof HttpRefusal)) throw err;
          refused.inc({ reason: err.reason });
          opts.log.info({ status: err.status, reason: err.reason, detail: err.message }, 'certificate request refused');
          return refusalResponse(err);
        }
      },
    },
    {
      method: 'GET',
      path: '/v1/ca',
      handler: () => ({ status: 200, headers: { 'content-type': 'application/x-pem-file', 'cache-control': 'max-age=300' }, text: opts.ca.certPem }),
    },
  ];
}
