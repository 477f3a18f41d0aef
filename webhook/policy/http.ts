import { jsonDepthOver } from '../../shared/json.js';
import type { RouteHandler, RouteOptions, RouteRequest, RouteResponse } from '../server.js';

// Helpers for the control plane's own endpoints (issuer, policy, CA), mounted on the webhook's route table:
// JSON in, JSON errors out.

/** One endpoint, ready for `ControlPlaneServer.addRoute(method, path, handler, options)`. */
export interface Route {
  method: 'GET' | 'POST';
  path: string;
  handler: RouteHandler;
  options?: RouteOptions;
}

/** A refusal with its HTTP status; `reason` is a stable word for clients and metrics. */
export class HttpRefusal extends Error {
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** Errors are `{"error":{"status":403,"reason":"NamespaceNotEnabled","message":"…"}}`. */
export function refusalResponse(e: HttpRefusal): RouteResponse {
  return { status: e.status, headers: { 'cache-control': 'no-store', ...e.headers }, json: { error: { status: e.status, reason: e.reason, message: e.message } } };
}

/**
 * A GET endpoint whose refusals (HttpRefusal) become JSON error answers, logged at info (503s are the server's own
 * state, logged where it is known) and every answer counted by code. Other errors propagate (500).
 */
export function refusingRoute(
  path: string,
  answer: (req: RouteRequest) => Promise<RouteResponse>,
  opts: { log: { info(obj: object, msg: string): void }; responses: { inc(labels: { code: string }): void }; what: string },
): Route {
  return {
    method: 'GET',
    path,
    handler: async (req) => {
      let r: RouteResponse;
      try {
        r = await answer(req);
      } catch (err) {
        if (!(err instanceof HttpRefusal)) throw err;
        if (err.status !== 503) opts.log.info({ status: err.status, reason: err.reason, detail: err.message }, `${opts.what} request refused`);
        r = refusalResponse(err);
      }
      opts.responses.inc({ code: String(r.status) });
      return r;
    },
  };
}

/** The bearer token of the request; refuses (401) when there is none. */
export function bearerToken(req: RouteRequest): string {
  const h = req.headers.authorization;
  const m = h ? /^Bearer\s+(\S+)\s*$/i.exec(h) : null;
  if (!m) throw new HttpRefusal(401, 'Unauthenticated', 'missing bearer token (send the projected ServiceAccount token with audience aigress)');
  return m[1]!;
}

/** The request's JSON object body; refuses (400/415) anything else. The server bounds its size. */
export function jsonBody(req: RouteRequest): Record<string, unknown> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json') throw new HttpRefusal(415, 'UnsupportedMediaType', 'content-type must be application/json');
  let v: unknown;
  const text = req.body.toString('utf8');
  if (jsonDepthOver(text, 32)) throw new HttpRefusal(400, 'BadRequest', 'request body is nested too deeply');
  try {
    v = JSON.parse(text);
  } catch {
    throw new HttpRefusal(400, 'BadRequest', 'request body is not valid JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new HttpRefusal(400, 'BadRequest', 'request body must be a JSON object');
  return v as Record<string, unknown>;
}
