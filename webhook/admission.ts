import type { ProviderId } from '../shared/policy/types.js';
import type { InjectionConfig } from './config.js';
import { inject, type InjectionResult } from './inject/inject.js';
import { isObj, jsonDepthOver, type Obj } from '../shared/json.js';

// AdmissionReview in, HTTP answer out: the webhook's whole decision as a pure function of the request bytes.
// The server around it only moves bytes, times the call and counts the outcome.

export const ADMISSION_API_VERSION = 'admission.k8s.io/v1';

export type AdmissionResult = 'injected' | 'updated' | 'skipped' | 'denied' | 'allowed' | 'bad-request' | 'error';

export interface AdmissionOutcome {
  /** HTTP status: 200 for every AdmissionReview answer (allowed or not), 400 when the request is not one, 500 on a bug. */
  status: number;
  body: unknown;
  result: AdmissionResult;
  /** Bounded vocabulary, for the metrics label. */
  reason: string;
  /** What the request log line carries: identifiers and the decision, never the pod spec or its env values. */
  log: {
    uid?: string;
    namespace?: string;
    /** The pod's name, or its generateName (pods of a Deployment have no name yet at admission). */
    pod?: string;
    operation?: string;
    dryRun?: boolean;
    warnings?: number;
    message?: string;
  };
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

function badRequest(reason: string, message: string, log: AdmissionOutcome['log'] = {}): AdmissionOutcome {
  return { status: 400, body: { message }, result: 'bad-request', reason, log: { ...log, message } };
}

function review(response: Obj): unknown {
  return { apiVersion: ADMISSION_API_VERSION, kind: 'AdmissionReview', response };
}

function quote(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

function resultOf(r: InjectionResult): AdmissionResult {
  if (r.denied) return 'denied';
  if (r.reason === 'injected') return 'injected';
  if (r.reason === 'updated') return 'updated';
  return 'skipped';
}

/**
 * Deepest object/array nesting accepted. A Pod is about ten levels deep; the API server's own decoder stops at
 * 10,000, deep enough to overflow the recursive walks behind injection (which answered 500).
 */
export const MAX_JSON_DEPTH = 100;

/** Answers one AdmissionReview request body. Never throws: every input gets an HTTP status and a JSON body. */
export function admit(body: Buffer | string, config: InjectionConfig, managedCredentials?: (namespace: string) => readonly ProviderId[]): AdmissionOutcome {
  let parsed: unknown;
  const text = typeof body === 'string' ? body : body.toString('utf8');
  if (jsonDepthOver(text, MAX_JSON_DEPTH)) return badRequest('too-deep', `JSON nested deeper than ${MAX_JSON_DEPTH} levels`);
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    return badRequest('malformed-json', `malformed JSON: ${(err as Error).message}`);
  }
  if (!isObj(parsed)) return badRequest('not-an-admission-review', 'the body must be an AdmissionReview object');
  if (parsed.apiVersion !== ADMISSION_API_VERSION) {
    return badRequest('wrong-api-version', `apiVersion must be ${ADMISSION_API_VERSION} (got ${quote(parsed.apiVersion)})`);
  }
  if (parsed.kind !== 'AdmissionReview') return badRequest('wrong-kind', `kind must be AdmissionReview (got ${quote(parsed.kind)})`);
  const req = parsed.request;
  if (!isObj(req)) return badRequest('missing-request', 'request: required (an AdmissionRequest object)');
  const uid = str(req.uid);
  if (uid === undefined || uid === '') return badRequest('missing-uid', `request.uid: required (got ${quote(req.uid)})`);

  const operation = str(req.operation);
  const dryRun = req.dryRun === true;
  const object = req.object;
  const meta = isObj(object) && isObj(object.metadata) ? object.metadata : {};
  const namespace = str(req.namespace) || str(meta.namespace) || '';
  const log: AdmissionOutcome['log'] = { uid, namespace, pod: str(meta.name) ?? str(meta.generateName), operation, dryRun };
  const allow = (reason: string): AdmissionOutcome => ({ status: 200, body: review({ uid, allowed: true }), result: 'allowed', reason, log });

  const kind = isObj(req.kind) ? req.kind : {};
  // Only the pods resource itself: pods/ephemeralcontainers, pods/binding and the like pass unchanged.
  if (kind.kind !== 'Pod' || (str(kind.group) ?? '') !== '' || (str(req.subResource) ?? '') !== '') return allow('not-a-pod');
  if (operation !== 'CREATE') return allow('not-create');
  if (!isObj(object)) return badRequest('missing-object', 'request.object: required for a Pod CREATE', log);

  let r: InjectionResult;
  try {
    r = inject(object, { namespace, ...(managedCredentials && { managedCredentials: managedCredentials(namespace) }) }, config);
  } catch (err) {
    // A bug, not bad input: answer 500 so the API server applies the webhook's failurePolicy, and say what broke.
    const message = `internal error: ${(err as Error)?.message ?? String(err)}`;
    return { status: 500, body: { message: 'internal error' }, result: 'error', reason: 'internal-error', log: { ...log, message } };
  }
  const result = resultOf(r);
  if (r.denied) {
    return {
      status: 200,
      body: review({ uid, allowed: false, status: { code: r.denied.code, message: r.denied.message } }),
      result,
      reason: r.reason,
      log: { ...log, message: r.denied.message },
    };
  }
  const response: Obj = { uid, allowed: true };
  if (r.patch.length > 0) {
    response.patchType = 'JSONPatch';
    response.patch = Buffer.from(JSON.stringify(r.patch)).toString('base64');
  }
  if (r.warnings.length > 0) response.warnings = r.warnings;
  return {
    status: 200,
    body: review(response),
    result,
    reason: r.reason,
    log: { ...log, warnings: r.warnings.length, ...(r.skippedReason ? { message: r.skippedReason } : {}) },
  };
}
