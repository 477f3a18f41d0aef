import { Counter, Gauge, Registry } from 'prom-client';
import { LABEL_INJECT } from '../../shared/constants.js';
import type { Logger } from '../../shared/log.js';
import { DEFAULT_MAX_WAIT_MS, waitForCaller, waitParam } from '../long-poll.js';
import type { TokenIdentity } from '../tokenreview.js';
import type { RouteRequest, RouteResponse } from '../server.js';
import { bearerToken, HttpRefusal, refusingRoute, type Route } from './http.js';
import type { PolicyStore } from './store.js';

// GET /v1/policy: the effective policy of the caller's namespace (taken from its ServiceAccount token, never
// from a parameter), with an ETag. Long poll: with `?wait=30s` and `If-None-Match: <etag>`, the answer waits
// until the policy changes (200 with the new one) or the time is up (304). A change therefore reaches every
// proxy as fast as the watch brings it here, with one open request per proxy and no polling interval.

export interface PolicyServerOptions {
  store: PolicyStore;
  /** `source`: the caller's address, for the reviewer's per-source limit on unknown tokens. */
  identify(token: string, source?: string): Promise<TokenIdentity>;
  log: Logger;
  registry?: Registry;
  maxWaitMs?: number;
}

export function policyRoutes(opts: PolicyServerOptions): Route[] {
  const maxWait = opts.maxWaitMs ?? DEFAULT_MAX_WAIT_MS;
  const registry = opts.registry ?? new Registry();
  const responses = new Counter({
    name: 'aigress_policy_responses_total',
    help: 'GET /v1/policy answers, by HTTP status.',
    labelNames: ['code'],
    registers: [registry],
  });
  new Gauge({
    name: 'aigress_policy_long_polls',
    help: 'Proxies waiting in a policy long poll.',
    registers: [registry],
    collect() {
      this.set(opts.store.waiting());
    },
  });

  async function answer(req: RouteRequest): Promise<RouteResponse> {
    const waitMs = waitParam(req, maxWait);
    const who = await opts.identify(bearerToken(req), req.raw.socket.remoteAddress);
    const { store } = opts;
    if (!store.isSynced()) throw new HttpRefusal(503, 'Starting', 'the control plane is still loading policies', { 'retry-after': '2' });
    const known = req.headers['if-none-match'];
    let entry = store.get(who.namespace);
    if (entry && known === entry.etag && waitMs > 0) {
      // The proxy may go away while waiting (pod deleted): stop waiting for it when its connection closes.
      const etag = entry.etag;
      if (!(await waitForCaller(req, (signal) => store.waitForChange(who.namespace, etag, waitMs, signal)))) return { status: 499 };
      entry = store.get(who.namespace);
    }
    if (!entry) throw new HttpRefusal(403, 'NamespaceNotEnabled', `namespace ${who.namespace} is not opted in (label it ${LABEL_INJECT}=enabled)`);
    if (entry.kind === 'unavailable') throw new HttpRefusal(503, 'PolicyUnavailable', entry.message, { 'retry-after': '10' });
    const headers = { etag: entry.etag, 'cache-control': 'no-cache' };
    if (known === entry.etag) return { status: 304, headers, text: '' };
    return { status: 200, headers: { ...headers, 'content-type': 'application/json' }, text: entry.body };
  }

  return [refusingRoute('/v1/policy', answer, { log: opts.log, responses, what: 'policy' })];
}
