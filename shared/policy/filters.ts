import { RE2JS } from 're2js';
import { isObj, type Obj } from '../json.js';

// `spec.filters`: an ordered list of payload processors (GEP-5091's processor properties: name, failureMode,
// timeout, phase), each of one type with its own fields. Checked here, compiled by sidecar/pipeline/filters/.
// Regex patterns come from policy authors and are untrusted input to the proxy: they are compiled with re2js
// (RE2 semantics, linear time, no backreferences or lookaround), never with the backtracking RegExp engine.

export const FILTER_TYPES = ['pii', 'regex', 'prompt-injection', 'external', 'transform'] as const;
export type FilterType = (typeof FILTER_TYPES)[number];

export const PII_KINDS = ['email', 'phone', 'credit-card', 'iban', 'us-ssn', 'ip-address', 'secret'] as const;
export type PiiKind = (typeof PII_KINDS)[number];

export const FILTER_PHASES = ['request', 'response', 'both'] as const;
export type FilterPhase = (typeof FILTER_PHASES)[number];
export const FILTER_ACTIONS = ['redact', 'block', 'log'] as const;
export type FilterAction = (typeof FILTER_ACTIONS)[number];
export const FAILURE_MODES = ['FailClosed', 'FailOpen'] as const;
export type FilterFailureMode = (typeof FAILURE_MODES)[number];
/** Pod identity fields a transform may take values from. */
export const IDENTITY_SOURCES = ['namespace', 'pod', 'serviceAccount', 'workload'] as const;
export type IdentitySource = (typeof IDENTITY_SOURCES)[number];

/** Default deadline of a filter: external guards answer over the network, built-in ones run in process. */
export const DEFAULT_EXTERNAL_TIMEOUT = '200ms';
export const DEFAULT_BUILTIN_TIMEOUT = '2s';
/** How much streamed text a response-phase pattern may span (characters held back per stream channel). */
export const DEFAULT_STREAM_WINDOW = 256;
export const MAX_STREAM_WINDOW = 4096;

interface FilterBase {
  /** Unique within the policy; default `<type>-<index>`. Metric label and log key. */
  name: string;
  failureMode: FilterFailureMode;
  /** A duration (`200ms`, `2s`). */
  timeout: string;
  phase: FilterPhase;
}

export interface PiiFilter extends FilterBase {
  type: 'pii';
  detect: PiiKind[];
  action: FilterAction;
  /** With `action: redact`: placeholders in the response are replaced by the values before the app reads them. */
  restore: boolean;
  /**
   * The request's texts as the provider got them go into the request's log line (`facts.promptText`), with this
   * filter's kinds replaced by placeholders whatever its action or the policy's mode. Off by default.
   */
  logText: boolean;
}
export interface RegexFilter extends FilterBase {
  type: 'regex';
  /** RE2 syntax; a leading `(?i)` makes it case-insensitive. */
  pattern: string;
  action: FilterAction;
  /** Characters a match may span in a streamed response (held back per channel). */
  window: number;
}
export interface PromptInjectionFilter extends FilterBase {
  type: 'prompt-injection';
  action: 'block' | 'log';
  /** A score in (0, 1]: the request is flagged when the rules that match add up to at least this. */
  threshold: number;
  /** Rules of the shipped set to leave out, by name. */
  disable: string[];
}
export interface ExternalFilter extends FilterBase {
  type: 'external';
  url: string;
}
/** A value set by a transform: a literal, or a field of the pod's identity. */
export type TransformValue = { value: string } | { fromIdentity: IdentitySource };
export interface TransformFilter extends FilterBase {
  type: 'transform';
  setBodyFields: ({ path: string } & TransformValue)[];
  removeBodyFields: string[];
  setHeaders: ({ name: string } & TransformValue)[];
  removeHeaders: string[];
}
export type Filter = PiiFilter | RegexFilter | PromptInjectionFilter | ExternalFilter | TransformFilter;

const DEFAULT_NAME = new RegExp(`^(${FILTER_TYPES.join('|')})-\\d+$`);

type Fail = (path: string, message: string) => void;

/** `(?i)` and RE2 flags: the compiled pattern, or the syntax error. Never the backtracking engine. */
export function compilePattern(pattern: string): RE2JS {
  return RE2JS.compile(pattern);
}

const DURATION = /^(\d+)(ms|s|m)$/;
export function durationMs(s: string): number | undefined {
  const m = DURATION.exec(s);
  if (!m) return undefined;
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000 }[m[2] as 'ms' | 's' | 'm'];
}

/** A simple JSONPath: `$.a.b`, `$.a[0].b`, `$['x-y']`. Returns the keys, or undefined when not one. */
export function parseJsonPath(p: string): (string | number)[] | undefined {
  if (!p.startsWith('$')) return undefined;
  const out: (string | number)[] = [];
  let i = 1;
  const re = /^(?:\.([A-Za-z_][A-Za-z0-9_-]*)|\[(\d{1,6})\]|\['([^'\\]{1,256})'\])/;
  while (i < p.length) {
    const m = re.exec(p.slice(i));
    if (!m) return undefined;
    out.push(m[1] ?? (m[2] !== undefined ? Number(m[2]) : m[3]!));
    i += m[0].length;
  }
  return out.length > 0 && out.length <= 32 ? out : undefined;
}

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$/;
/** Headers a transform may not set or remove: framing and routing are the proxy's. */
export const PROTECTED_HEADERS = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'te', 'upgrade', 'trailer', 'keep-alive', 'proxy-connection']);

class FilterChecker {
  constructor(private readonly fail: Fail) {}
  keys(o: Obj, path: string, allowed: readonly string[]): void {
    for (const k of Object.keys(o)) if (!allowed.includes(k)) this.fail(`${path}.${k}`, `unknown field (allowed: ${allowed.join(', ')})`);
  }
  oneOf<T extends string>(v: unknown, path: string, allowed: readonly T[], dflt: T): T {
    if (v === undefined) return dflt;
    if (typeof v !== 'string' || !allowed.includes(v as T)) {
      this.fail(path, `must be one of ${allowed.join(', ')} (got ${JSON.stringify(v)})`);
      return dflt;
    }
    return v as T;
  }
  strings(v: unknown, path: string): string[] {
    if (v === undefined) return [];
    if (!Array.isArray(v)) {
      this.fail(path, 'must be a list of strings');
      return [];
    }
    return v.filter((x, i) => {
      if (typeof x === 'string' && x !== '') return true;
      this.fail(`${path}[${i}]`, 'must be a non-empty string');
      return false;
    }) as string[];
  }
  value(o: Obj, path: string): TransformValue | undefined {
    const has = (k: string): boolean => o[k] !== undefined;
    if (has('value') === has('fromIdentity')) {
      this.fail(path, 'needs exactly one of value, fromIdentity');
      return undefined;
    }
    if (has('value')) {
      const v = o.value;
      if (typeof v !== 'string') {
        this.fail(`${path}.value`, 'must be a string');
        return undefined;
      }
      return { value: v };
    }
    return { fromIdentity: this.oneOf(o.fromIdentity, `${path}.fromIdentity`, IDENTITY_SOURCES, 'workload') };
  }
}

const COMMON = ['type', 'name', 'failureMode', 'onError', 'timeout', 'phase'];

/** The failure mode, from `failureMode` or its alias `onError` (deny = FailClosed, allow = FailOpen). */
function failureMode(c: FilterChecker, f: Obj, path: string, fail: Fail): FilterFailureMode {
  const fm = c.oneOf(f.failureMode, `${path}.failureMode`, FAILURE_MODES, 'FailClosed');
  if (f.onError === undefined) return fm;
  const alias = c.oneOf(f.onError, `${path}.onError`, ['deny', 'allow', ...FAILURE_MODES] as const, 'deny');
  const mapped: FilterFailureMode = alias === 'allow' || alias === 'FailOpen' ? 'FailOpen' : 'FailClosed';
  if (f.failureMode !== undefined && mapped !== fm) fail(`${path}.onError`, `contradicts failureMode ${fm} (onError is its older alias; use failureMode)`);
  return mapped;
}

function checkOne(f: unknown, path: string, index: number, fail: Fail): Filter | undefined {
  if (!isObj(f)) {
    fail(path, 'must be an object');
    return undefined;
  }
  const c = new FilterChecker(fail);
  const type = f.type;
  if (typeof type !== 'string' || !(FILTER_TYPES as readonly string[]).includes(type)) {
    fail(`${path}.type`, `must be one of ${FILTER_TYPES.join(', ')} (got ${JSON.stringify(type)})`);
    return undefined;
  }
  let name = `${type}-${index}`;
  if (f.name !== undefined) {
    if (typeof f.name !== 'string' || !/^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$/.test(f.name)) {
      fail(`${path}.name`, 'must be a lower-case name of letters, digits, ".", "_" and "-" (at most 63)');
    } else name = f.name;
  }
  const timeoutDefault = type === 'external' ? DEFAULT_EXTERNAL_TIMEOUT : DEFAULT_BUILTIN_TIMEOUT;
  const timeout = f.timeout === undefined ? timeoutDefault : f.timeout;
  if (typeof timeout !== 'string' || durationMs(timeout) === undefined || durationMs(timeout)! <= 0 || durationMs(timeout)! > 60_000) {
    fail(`${path}.timeout`, 'must be a duration from 1ms to 60s, like 200ms or 2s');
  }
  const base: FilterBase = {
    name,
    failureMode: failureMode(c, f, path, fail),
    timeout: typeof timeout === 'string' ? timeout : timeoutDefault,
    phase: c.oneOf(f.phase, `${path}.phase`, FILTER_PHASES, 'request'),
  };
  switch (type as FilterType) {
    case 'pii': {
      c.keys(f, path, [...COMMON, 'detect', 'action', 'restore', 'logText']);
      const detect = c.strings(f.detect, `${path}.detect`).filter((k, i) => {
        if ((PII_KINDS as readonly string[]).includes(k)) return true;
        fail(`${path}.detect[${i}]`, `must be one of ${PII_KINDS.join(', ')} (got ${JSON.stringify(k)})`);
        return false;
      }) as PiiKind[];
      const action = c.oneOf(f.action, `${path}.action`, FILTER_ACTIONS, 'redact');
      if (f.restore !== undefined && typeof f.restore !== 'boolean') fail(`${path}.restore`, 'must be true or false');
      const restore = f.restore === true;
      if (restore && action !== 'redact') fail(`${path}.restore`, 'needs action: redact (only redacted values can be restored)');
      if (restore && base.phase === 'response') fail(`${path}.restore`, 'restores what the request redacted: needs phase request or both (a response-only filter redacts nothing in the request)');
      if (f.logText !== undefined && typeof f.logText !== 'boolean') fail(`${path}.logText`, 'must be true or false');
      const logText = f.logText === true;
      if (logText && base.phase === 'response') fail(`${path}.logText`, 'logs the request\'s text: needs phase request or both');
      return { type: 'pii', ...base, detect: detect.length > 0 || f.detect !== undefined ? [...new Set(detect)] : [...PII_KINDS], action, restore, logText };
    }
    case 'regex': {
      c.keys(f, path, [...COMMON, 'pattern', 'action', 'window']);
      if (typeof f.pattern !== 'string' || f.pattern === '') {
        fail(`${path}.pattern`, 'must be a non-empty string');
        return undefined;
      }
      try {
        compilePattern(f.pattern);
      } catch (err) {
        fail(`${path}.pattern`, `invalid regular expression (RE2 syntax: no backreferences or lookaround): ${(err as Error).message}`);
      }
      let window = DEFAULT_STREAM_WINDOW;
      if (f.window !== undefined) {
        if (typeof f.window !== 'number' || !Number.isInteger(f.window) || f.window < 1 || f.window > MAX_STREAM_WINDOW) {
          fail(`${path}.window`, `must be an integer from 1 to ${MAX_STREAM_WINDOW} (characters)`);
        } else window = f.window;
      }
      return { type: 'regex', ...base, pattern: f.pattern, action: c.oneOf(f.action, `${path}.action`, FILTER_ACTIONS, 'block'), window };
    }
    case 'prompt-injection': {
      c.keys(f, path, [...COMMON, 'action', 'threshold', 'disable']);
      let threshold = 0.8;
      if (f.threshold !== undefined) {
        if (typeof f.threshold !== 'number' || !(f.threshold > 0 && f.threshold <= 1)) fail(`${path}.threshold`, 'must be a number in (0, 1]');
        else threshold = f.threshold;
      }
      if (base.phase !== 'request') fail(`${path}.phase`, 'prompt-injection inspects what the provider reads: phase must be request');
      return {
        type: 'prompt-injection',
        ...base,
        action: c.oneOf(f.action, `${path}.action`, ['block', 'log'] as const, 'block'),
        threshold,
        disable: c.strings(f.disable, `${path}.disable`),
      };
    }
    case 'external': {
      c.keys(f, path, [...COMMON, 'url']);
      let url = '';
      if (typeof f.url !== 'string') fail(`${path}.url`, 'must be a URL string');
      else {
        try {
          const u = new URL(f.url);
          if (u.protocol !== 'http:' && u.protocol !== 'https:') fail(`${path}.url`, 'must be http or https');
          else if (u.username || u.password) fail(`${path}.url`, 'must not carry credentials');
          url = f.url;
        } catch {
          fail(`${path}.url`, `not a valid URL: ${JSON.stringify(f.url)}`);
        }
      }
      return { type: 'external', ...base, url };
    }
    case 'transform': {
      c.keys(f, path, [...COMMON, 'setBodyFields', 'removeBodyFields', 'setHeaders', 'removeHeaders']);
      if (base.phase !== 'request') fail(`${path}.phase`, 'transform rewrites the request: phase must be request');
      const list = (v: unknown, p: string): Obj[] => {
        if (v === undefined) return [];
        if (!Array.isArray(v)) {
          fail(p, 'must be a list');
          return [];
        }
        return v.filter((x, i) => (isObj(x) ? true : (fail(`${p}[${i}]`, 'must be an object'), false))) as Obj[];
      };
      const jsonPath = (s: unknown, p: string): string | undefined => {
        if (typeof s === 'string' && parseJsonPath(s)) return s;
        fail(p, `must be a simple JSONPath like $.user or $.metadata.tags[0] (got ${JSON.stringify(s)})`);
        return undefined;
      };
      const header = (s: unknown, p: string): string | undefined => {
        if (typeof s !== 'string' || !HEADER_NAME.test(s)) fail(p, 'must be an HTTP header name');
        else if (PROTECTED_HEADERS.has(s.toLowerCase())) fail(p, `${s} is set by the proxy and cannot be changed`);
        else return s.toLowerCase();
        return undefined;
      };
      const setBodyFields: TransformFilter['setBodyFields'] = [];
      list(f.setBodyFields, `${path}.setBodyFields`).forEach((o, i) => {
        const p = `${path}.setBodyFields[${i}]`;
        c.keys(o, p, ['path', 'value', 'fromIdentity']);
        const jp = jsonPath(o.path, `${p}.path`);
        const v = c.value(o, p);
        if (jp && v) setBodyFields.push({ path: jp, ...v });
      });
      const setHeaders: TransformFilter['setHeaders'] = [];
      list(f.setHeaders, `${path}.setHeaders`).forEach((o, i) => {
        const p = `${path}.setHeaders[${i}]`;
        c.keys(o, p, ['name', 'value', 'fromIdentity']);
        const h = header(o.name, `${p}.name`);
        const v = c.value(o, p);
        if (h && v) setHeaders.push({ name: h, ...v });
      });
      const removeBodyFields = c.strings(f.removeBodyFields, `${path}.removeBodyFields`).filter((s, i) => jsonPath(s, `${path}.removeBodyFields[${i}]`));
      const removeHeaders = c.strings(f.removeHeaders, `${path}.removeHeaders`).map((s, i) => header(s, `${path}.removeHeaders[${i}]`)).filter((s): s is string => !!s);
      return { type: 'transform', ...base, setBodyFields, removeBodyFields, setHeaders, removeHeaders };
    }
  }
}

/** Checks `spec.filters` (already known to be a list), filling defaults; names must be unique. */
export function checkFilters(list: readonly unknown[], fail: Fail): Filter[] {
  const out: Filter[] = [];
  const seen = new Map<string, number>();
  list.forEach((f, i) => {
    const path = `spec.filters[${i}]`;
    const checked = checkOne(f, path, i, fail);
    if (!checked) return;
    // Default names (`pii-0`) may meet again when the control plane puts the cluster default's filters before a
    // namespace's; the pipeline then numbers them apart. A name the author chose must be unique.
    const prev = seen.get(checked.name);
    if (prev !== undefined && !DEFAULT_NAME.test(checked.name)) fail(`${path}.name`, `${JSON.stringify(checked.name)} is already the name of spec.filters[${prev}]`);
    seen.set(checked.name, i);
    out.push(checked);
  });
  return out;
}
