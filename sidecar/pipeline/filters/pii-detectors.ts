import { isIPv6 } from 'node:net';
import type { PiiKind } from '../../../shared/policy/filters.js';
import type { Match } from './scan-rewriter.js';

// PII and secret detectors: a pattern finds candidates, a check confirms them (Luhn for cards, mod-97 for IBANs,
// ranges for SSNs and IPs), and overlapping finds keep the longest. The patterns are ours (not policy input),
// written without nested unbounded repetition, so the backtracking engine stays linear on them; every
// quantifier is bounded. Detectors see the texts the provider or the app reads, never keys or base64 data.

export interface Detector {
  readonly kind: PiiKind;
  /** Placeholder label: `[EMAIL_1]`. */
  readonly label: string;
  readonly find: (text: string) => Match[];
}

function byRegex(kind: PiiKind, re: RegExp, check?: (m: string) => [number, number] | boolean): (text: string) => Match[] {
  return (text) => {
    const out: Match[] = [];
    re.lastIndex = 0;
    for (let m = re.exec(text); m; m = re.exec(text)) {
      const v = m[0];
      const r = check ? check(v) : true;
      if (r === true) out.push({ start: m.index, end: m.index + v.length, kind });
      else if (Array.isArray(r)) {
        out.push({ start: m.index + r[0], end: m.index + r[1], kind });
        re.lastIndex = m.index + r[1];
      }
      // A candidate the check refuses may hide a real find inside it ("ref 12 4111 1111 1111 1111": the card
      // starts at the 4): look again from the next character, so what is found never depends on where a scan
      // began (a stream scans from wherever it cut). Candidates are bounded, so this stays linear.
      else re.lastIndex = m.index + 1;
      if (v.length === 0) re.lastIndex = Math.max(re.lastIndex, m.index + 1);
    }
    return out;
  };
}

export function luhn(digits: string): boolean {
  let sum = 0;
  let dbl = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (dbl) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    dbl = !dbl;
  }
  return sum % 10 === 0;
}

/** Issuer prefixes of the card networks (Visa, Mastercard, Amex, Discover, JCB, Diners, UnionPay, Maestro). */
const CARD_PREFIX = /^(?:4|5[1-5]|2(?:2[2-9]|[3-6]\d|7[01]|720)|3[47]|6(?:011|5|4[4-9]|2)|35(?:2[89]|[3-8])|3(?:0[0-5]|[689])|5[06-9]|6\d)/;

function cardCheck(v: string): boolean {
  // grouped numbers start with a group of four (below): most candidates a run like "1 2 3 4 …" makes, one per
  // digit, fail here before any string is built
  const c4 = v.charCodeAt(4);
  if (c4 !== 32 && c4 !== 45 && (v.includes(' ') || v.includes('-'))) return false;
  const digits = v.replace(/[ -]/g, '');
  if (digits.length < 13 || digits.length > 19) return false;
  // one kind of separator, used in groups (4-4-4-4, 4-6-5): not a phone number or a date
  if (/ /.test(v) && /-/.test(v)) return false;
  const groups = v.split(/[ -]/).map((g) => g.length).join(',');
  if (groups.includes(',') && !/^(4,4,4,4|4,4,4,4,3|4,4,4,1|4,6,5|4,6,4)$/.test(groups)) return false;
  return CARD_PREFIX.test(digits) && luhn(digits) && !/^(\d)\1+$/.test(digits);
}

/** IBAN lengths by country (ISO 13616 registry, the SEPA countries and common others). */
const IBAN_LENGTH: Record<string, number> = {
  AD: 24, AE: 23, AL: 28, AT: 20, AZ: 28, BA: 20, BE: 16, BG: 22, BH: 22, BR: 29, CH: 21, CR: 22, CY: 28, CZ: 24,
  DE: 22, DK: 18, DO: 28, EE: 20, EG: 29, ES: 24, FI: 18, FO: 18, FR: 27, GB: 22, GE: 22, GI: 23, GL: 18, GR: 27,
  GT: 28, HR: 21, HU: 28, IE: 22, IL: 23, IS: 26, IT: 27, JO: 30, KW: 30, KZ: 20, LB: 28, LI: 21, LT: 20, LU: 20,
  LV: 21, MC: 27, MD: 24, ME: 22, MK: 19, MR: 27, MT: 31, MU: 30, NL: 18, NO: 15, PK: 24, PL: 28, PS: 29, PT: 25,
  QA: 29, RO: 24, RS: 22, SA: 24, SE: 24, SI: 19, SK: 24, SM: 27, TN: 24, TR: 26, UA: 29, VG: 24, XK: 20,
};

export function mod97(iban: string): boolean {
  const s = iban.slice(4) + iban.slice(0, 4);
  let r = 0;
  for (const ch of s) {
    const c = ch.charCodeAt(0);
    const v = c >= 65 ? c - 55 : c - 48;
    r = v >= 10 ? (r * 100 + v) % 97 : (r * 10 + v) % 97;
  }
  return r === 1;
}

/** An IBAN candidate cut to its country's length (spaces allowed in groups), or false. */
function ibanCheck(v: string): [number, number] | false {
  const len = IBAN_LENGTH[v.slice(0, 2)];
  if (!len) return false;
  let n = 0;
  let end = 0;
  for (let i = 0; i < v.length && n < len; i++) {
    if (v[i] !== ' ') n++;
    end = i + 1;
  }
  if (n !== len) return false;
  const compact = v.slice(0, end).replace(/ /g, '');
  return mod97(compact) ? [0, end] : false;
}

function ssnCheck(v: string): boolean {
  const [a, b, c] = v.split('-');
  return a !== '000' && a !== '666' && a![0] !== '9' && b !== '00' && c !== '0000';
}

function ipv4Check(v: string): boolean {
  return v.split('.').every((o) => Number(o) <= 255 && (o.length === 1 || o[0] !== '0'));
}

function ipv6Check(v: string): boolean {
  const groups = v.split(':').filter((g) => g !== '').length;
  return groups >= 3 && isIPv6(v) && /[0-9a-f]/i.test(v);
}

/** Phone numbers: E.164 (`+4930123456`, with spaces, dots or dashes), and the common national forms. */
function phoneCheck(v: string): boolean {
  const digits = v.replace(/\D/g, '');
  if (v.startsWith('+')) return digits.length >= 8 && digits.length <= 15;
  return digits.length >= 9 && digits.length <= 12;
}

// Boundaries: a find must not run on from a word or number character (order ids, hashes, versions).
const NB = '(?<![\\w.@+-])';
const NA = '(?![\\w@-]|\\.\\d)';

// A token must not begin inside a longer run of token characters: without this, `sk-` inside
// `risk-assessment-…` or `/ask-the-…` was a key. A JSON escape (`\n`) before a token in JSON source still counts
// as a boundary. SA is the matching look-ahead for the tokens whose length is open-ended.
const SB = '(?:(?<![A-Za-z0-9_-])|(?<=\\\\[nrt]))';
const SA = '(?![A-Za-z0-9_-])';

const SECRET_PATTERNS = [
  `${SB}(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])`, // AWS access key IDs
  '"private_key_id"\\s{0,4}:\\s{0,4}"[0-9a-f]{40}"', // GCP service-account key JSON
  `${SB}AIza[0-9A-Za-z_-]{35}${SA}`, // Google API keys
  `${SB}sk-ant-(?:api|admin)\\d{2}-[A-Za-z0-9_-]{20,200}${SA}`, // Anthropic
  `${SB}sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,200}${SA}`, // OpenAI
  `${SB}(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36}(?![A-Za-z0-9])`, // GitHub tokens
  `${SB}github_pat_[A-Za-z0-9_]{22,255}(?![A-Za-z0-9_])`, // GitHub fine-grained tokens
  `${SB}glpat-[A-Za-z0-9_-]{20,64}${SA}`, // GitLab personal access tokens
  `${SB}xox[abposr]-[A-Za-z0-9-]{10,250}(?![A-Za-z0-9-])`, // Slack tokens
  // PEM private keys: findPem, below
  `${SB}eyJ[A-Za-z0-9_-]{5,4096}\\.eyJ[A-Za-z0-9_-]{5,8192}\\.[A-Za-z0-9_-]{10,1024}${SA}`, // JWTs
];

/**
 * Prefixed tokens whose body may be hyphenated words (`sk-`, `glpat-`, `xox?-`): a body of lower-case words joined
 * by hyphens (`sk-learn-compatible-estimators`, a URL slug) is prose, not a key; real ones mix in digits, capitals
 * or underscores.
 */
function secretCheck(v: string): boolean {
  const m = /^(?:sk-(?:proj-|svcacct-|admin-)?|glpat-|xox[abposr]-)/.exec(v);
  return !m || v.startsWith('sk-ant-') || !/^[a-z]+(?:-[a-z]+)+$/.test(v.slice(m[0].length));
}

const PEM_BEGIN = '-----BEGIN ';
/** The PEM body's characters (base64, line breaks, and the `Proc-Type:`/`DEK-Info:` headers of encrypted keys). */
const PEM_BODY_BAD = /[^A-Za-z0-9+/=\s\\:,-]/g;
const PEM_HEAD = /-----BEGIN (?:[A-Z0-9]{1,12} ){0,3}PRIVATE KEY-----/y;
const PEM_FOOT = /-----END (?:[A-Z0-9]{1,12} ){0,3}PRIVATE KEY-----/y;
const PEM_BODY_MAX = 16_384;

/**
 * PEM private-key blocks: a BEGIN line, 1 to PEM_BODY_MAX body characters, the first END line after it. The same
 * finds as the regex `HEAD[body]{1,16384}?FOOT`, in linear time: that regex, tried at every BEGIN, ran each one
 * up to 16 KiB on, and since BEGIN lines are made of body characters, a text of repeated BEGIN lines cost
 * BEGINs × 16 KiB steps (560 KB of them: 2.5 s). Here each END line and each character outside the body set is
 * found once, and every BEGIN looks its footer and its first non-body character up.
 */
function findPem(text: string): Match[] {
  const out: Match[] = [];
  let b = text.indexOf(PEM_BEGIN);
  if (b < 0) return out;
  // every END line that is a footer, in order
  const feet: number[] = [];
  const footLen: number[] = [];
  for (let e = text.indexOf('-----END ', b); e >= 0; e = text.indexOf('-----END ', e + 1)) {
    PEM_FOOT.lastIndex = e;
    const m = PEM_FOOT.exec(text);
    if (m) {
      feet.push(e);
      footLen.push(m[0].length);
    }
  }
  if (feet.length === 0) return out;
  // the first non-body character at or after `badFrom` is `bad` (text.length: none); queries move forward
  let badFrom = -1;
  let bad = -1;
  const firstBad = (x: number): number => {
    if (x >= badFrom && x <= bad) return bad;
    PEM_BODY_BAD.lastIndex = x;
    const m = PEM_BODY_BAD.exec(text);
    badFrom = x;
    bad = m ? m.index : text.length;
    return bad;
  };
  let f = 0;
  for (; b >= 0; b = text.indexOf(PEM_BEGIN, b + 1)) {
    PEM_HEAD.lastIndex = b;
    const h = PEM_HEAD.exec(text);
    if (!h) continue;
    const body = b + h[0].length;
    // the first footer after at least one body character (BEGINs only move forward, so neither does f)
    while (f < feet.length && feet[f]! < body + 1) f++;
    if (f === feet.length) break;
    const e = feet[f]!;
    if (e - body > PEM_BODY_MAX || firstBad(body) < e) continue;
    out.push({ start: b, end: e + footLen[f]!, kind: 'secret' });
    b = e + footLen[f]! - 1; // finds do not overlap: look on after this one
  }
  return out;
}

export const DETECTORS: readonly Detector[] = [
  { kind: 'secret', label: 'SECRET', find: byRegex('secret', new RegExp(SECRET_PATTERNS.join('|'), 'g'), secretCheck) },
  { kind: 'secret', label: 'SECRET', find: findPem },
  { kind: 'email', label: 'EMAIL', find: byRegex('email', /(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,24}(?![\w-])/g) },
  { kind: 'iban', label: 'IBAN', find: byRegex('iban', /(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}/g, ibanCheck) },
  { kind: 'credit-card', label: 'CREDIT_CARD', find: byRegex('credit-card', new RegExp(`${NB}\\d(?:[ -]?\\d){12,18}${NA}`, 'g'), cardCheck) },
  { kind: 'us-ssn', label: 'US_SSN', find: byRegex('us-ssn', new RegExp(`${NB}\\d{3}-\\d{2}-\\d{4}${NA}`, 'g'), ssnCheck) },
  {
    kind: 'phone',
    label: 'PHONE',
    find: byRegex(
      'phone',
      new RegExp(`${NB}(?<!\\d[ -])(?:\\+[1-9](?:[ .-]?\\(?\\d{1,4}\\)?){2,6}|\\(\\d{3}\\) ?\\d{3}[ .-]\\d{4}|\\d{3}[.-]\\d{3}[.-]\\d{4}|0\\d{1,4}[ /-]\\d{3,4}[ -]?\\d{2,5})${NA}(?![ -]\\d)`, 'g'),
      phoneCheck,
    ),
  },
  { kind: 'ip-address', label: 'IP_ADDRESS', find: byRegex('ip-address', /(?<![\w.:-])(?:\d{1,3}\.){3}\d{1,3}(?![\w-]|\.\d)|(?<![\w:.])(?:[0-9A-Fa-f]{1,4}:){1,7}:?(?::?[0-9A-Fa-f]{1,4}){1,7}(?![\w:])|(?<![\w:])::(?:[0-9A-Fa-f]{1,4}:){0,6}[0-9A-Fa-f]{1,4}(?![\w:])/g, (v) => (v.includes('.') ? ipv4Check(v) : ipv6Check(v))) },
];

/**
 * Secrets longer than a stream's fixed window, and how long they can grow: a stream holds such a find from its
 * first characters until it is complete (or can no longer be one), so it is never seen in halves. The bounds
 * follow SECRET_PATTERNS; every other kind fits the window.
 */
const PEM_OPEN = /^-----BEGIN (?:[A-Z0-9]{1,12} ){0,3}PRIVATE KEY-----[A-Za-z0-9+/=\s\\:,-]*$/;
/** The longest PEM block SECRET_PATTERNS finds: the armour lines and 16 KiB of body. */
export const PEM_MAX = 16_384 + 2 * 64;
const JWT_OPEN = /^eyJ[A-Za-z0-9_-]{0,4096}(?:\.(?:e(?:y(?:J[A-Za-z0-9_-]{0,8192}(?:\.[A-Za-z0-9_-]{0,1024})?)?)?)?)?$/;
export const JWT_MAX = 3 + 4096 + 4 + 8192 + 1 + 1024;
const GITHUB_PAT_OPEN = /^github_pat_[A-Za-z0-9_]{0,255}$/;
const TOKEN_CHAR = /[A-Za-z0-9_.-]/;

/**
 * Where a secret that may still be growing begins at the end of `text` (a PEM block without its END line, a
 * JWT or fine-grained GitHub token still running into the end), or `text.length` when none. What a stream must
 * hold back beyond its window: at most PEM_MAX characters.
 */
export function pendingSecret(text: string, kinds: ReadonlySet<PiiKind>): number {
  if (!kinds.has('secret')) return text.length;
  let at = text.length;
  const pem = text.lastIndexOf(PEM_BEGIN, text.length - 1);
  if (pem >= 0 && text.length - pem <= PEM_MAX) {
    const tail = text.slice(pem);
    // a block whose END line has come is a find (or no PEM at all): nothing pending
    // a block whose END line has come is a find (or no PEM at all): nothing pending; a header still being
    // written may become one
    if ((PEM_OPEN.test(tail) && !/-----END (?:[A-Z0-9]{1,12} ){0,3}PRIVATE KEY-----/.test(tail)) || (tail.length <= 64 && /^-----BEGIN [A-Z0-9 -]*$/.test(tail))) at = pem;
  }
  // the run of token characters the text ends in, as far back as the longest token could reach
  let run = text.length;
  const limit = Math.max(0, text.length - JWT_MAX - 1);
  while (run > limit && TOKEN_CHAR.test(text[run - 1]!)) run--;
  if (run < text.length) {
    const r = text.slice(run);
    const jwt = r.indexOf('eyJ');
    if (jwt >= 0 && JWT_OPEN.test(r.slice(jwt))) at = Math.min(at, run + jwt);
    const pat = r.indexOf('github_pat_');
    if (pat >= 0 && GITHUB_PAT_OPEN.test(r.slice(pat))) at = Math.min(at, run + pat);
  }
  return at;
}

/**
 * What each kind's finds are made of and how long one can be (plus 2 for the look-ahead after it): a find still
 * growing at the end of a text lies within the run of such characters the text ends in, and within its last
 * `max` of them. The long secrets have their own bound (pendingSecret); the other tokens fit 256.
 */
const TAILS: readonly { kind: PiiKind; chars: RegExp; max: number }[] = [
  { kind: 'email', chars: /[A-Za-z0-9._%+@-]/, max: 256 },
  { kind: 'phone', chars: /[0-9+ .()/-]/, max: 48 },
  { kind: 'credit-card', chars: /[0-9 .-]/, max: 40 },
  { kind: 'iban', chars: /[A-Z0-9 .]/, max: 66 },
  { kind: 'us-ssn', chars: /[0-9.-]/, max: 14 },
  { kind: 'ip-address', chars: /[0-9A-Fa-f.:]/, max: 74 },
  { kind: 'secret', chars: /[A-Za-z0-9_+/=.-]/, max: 256 },
];
const GCP_KEY = '"private_key_id"';
const GCP_OPEN = /^"private_key_id"\s{0,4}(?::\s{0,4}(?:"[0-9a-f]{0,40})?)?$/;

/**
 * Where the text a stream must still hold begins: the earliest place a find of `kinds` may still be growing at
 * the end of `text` (so nothing before it can change), or `text.length`. For prose this is the last word or
 * so; a number, address or token being written is held until it ends; a long secret until it is complete.
 */
export function holdFrom(text: string, kinds: ReadonlySet<PiiKind>): number {
  let at = pendingSecret(text, kinds);
  const n = text.length;
  for (const t of TAILS) {
    if (!kinds.has(t.kind)) continue;
    let i = n;
    const limit = Math.max(0, n - t.max);
    while (i > limit && t.chars.test(text[i - 1]!)) i--;
    if (i < at) at = i;
  }
  if (kinds.has('secret')) {
    // GCP service-account key JSON: `"private_key_id": "<40 hex>"`, held from its opening quote
    for (let q = text.lastIndexOf('"'); q >= 0 && n - q <= 68; q = q > 0 ? text.lastIndexOf('"', q - 1) : -1) {
      const tail = text.slice(q);
      if ((GCP_KEY.startsWith(tail) || GCP_OPEN.test(tail)) && q < at) at = q;
    }
  }
  return at;
}

const LABELS = new Map(DETECTORS.map((d) => [d.kind, d.label]));
export const labelOf = (kind: string): string => LABELS.get(kind as PiiKind) ?? kind.toUpperCase().replace(/-/g, '_');

/** The finds of `kinds` in `text`, sorted, overlaps resolved (the earliest start wins; then the longest). */
export function detect(text: string, kinds: ReadonlySet<PiiKind>): Match[] {
  const all: Match[] = [];
  for (const d of DETECTORS) if (kinds.has(d.kind)) all.push(...d.find(text));
  if (all.length <= 1) return all;
  all.sort((a, b) => a.start - b.start || b.end - a.end);
  const out: Match[] = [];
  for (const m of all) {
    const last = out[out.length - 1];
    if (last && m.start < last.end) continue;
    out.push(m);
  }
  return out;
}
