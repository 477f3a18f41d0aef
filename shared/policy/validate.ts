import { EGRESS_POLICY_API_VERSION, EGRESS_POLICY_KIND } from '../constants.js';
import { GLOBAL, isKnownPlace, regionGroup, REGION_GROUPS } from '../regions.js';
import {
  BUDGET_SCOPES,
  AZURE_AUTH_KINDS,
  IDENTITY_LABELS,
  PROVIDER_IDS,
  STORE_ERROR_MODES,
  type Budget,
  type Credential,
  type EgressPolicy,
  type EgressPolicySpec,
  type Filter,
  type MeteringSpec,
  type PriceEntry,
  type ProviderId,
  POLICY_MODES,
} from './types.js';
import { isObj, type Obj } from '../json.js';
import { notEnforced } from './enforced.js';
import { checkFilters } from './filters.js';

/** One problem in a policy document, with the path of the field it is about (e.g. `spec.regions.unknown`). */
export interface PolicyIssue {
  path: string;
  message: string;
  /** Set when the field is valid but this version does not enforce it (the controller's reason NotEnforced). */
  reason?: 'NotEnforced';
}

export type PolicyResult = { ok: true; policy: EgressPolicy } | { ok: false; issues: PolicyIssue[] };

/** The policy that applies when none is given: intercept every known provider, allow everything, pass the rest. */
export function defaultPolicySpec(): EgressPolicySpec {
  return {
    providers: [...PROVIDER_IDS],
    regions: { allow: [], unknown: 'allow' },
    models: { allow: [], deny: [] },
    budgets: [],
    filters: [],
    credentials: [],
    unmatchedEgress: 'passthrough',
  };
}


const DURATION = /^(\d+)(ms|s|m|h|d)$/;

/** Parses `200ms`, `30s`, `1m`, `1h`, `1d` into milliseconds; undefined when malformed. */
export function parseDuration(s: string): number | undefined {
  const m = DURATION.exec(s);
  if (!m) return undefined;
  const n = Number(m[1]);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 'ms' | 's' | 'm' | 'h' | 'd'];
  return n * unit;
}

class Checker {
  readonly issues: PolicyIssue[] = [];
  fail(path: string, message: string): void {
    this.issues.push({ path, message });
  }
  unknownKeys(o: Obj, path: string, allowed: readonly string[]): void {
    for (const k of Object.keys(o)) {
      if (!allowed.includes(k)) this.fail(`${path}.${k}`, `unknown field (allowed: ${allowed.join(', ')})`);
    }
  }
  stringList(v: unknown, path: string): string[] {
    if (v === undefined) return [];
    if (!Array.isArray(v)) {
      this.fail(path, 'must be a list of strings');
      return [];
    }
    const out: string[] = [];
    v.forEach((x, i) => {
      if (typeof x !== 'string' || x === '') this.fail(`${path}[${i}]`, 'must be a non-empty string');
      else out.push(x);
    });
    return out;
  }
  oneOf<T extends string>(v: unknown, path: string, allowed: readonly T[], dflt: T): T {
    if (v === undefined) return dflt;
    if (typeof v !== 'string' || !allowed.includes(v as T)) {
      this.fail(path, `must be one of ${allowed.join(', ')} (got ${JSON.stringify(v)})`);
      return dflt;
    }
    return v as T;
  }
}

function checkBudget(c: Checker, b: unknown, path: string): Budget | undefined {
  if (!isObj(b)) {
    c.fail(path, 'must be an object');
    return undefined;
  }
  c.unknownKeys(b, path, ['tokens', 'type', 'usd', 'per', 'scope', 'models', 'providers', 'onStoreError']);
  const budget: Budget = {
    per: String(b.per),
    scope: c.oneOf(b.scope, `${path}.scope`, BUDGET_SCOPES, 'pod'),
    onStoreError: c.oneOf(b.onStoreError, `${path}.onStoreError`, STORE_ERROR_MODES, 'FailClosed'),
  };
  if (b.tokens === undefined && b.usd === undefined) c.fail(path, 'needs tokens or usd');
  else if (b.tokens !== undefined && b.usd !== undefined) c.fail(path, 'has both tokens and usd; use one budget entry for each');
  if (b.tokens !== undefined) {
    if (typeof b.tokens !== 'number' || !Number.isSafeInteger(b.tokens) || b.tokens <= 0) c.fail(`${path}.tokens`, 'must be a positive integer');
    else budget.tokens = b.tokens;
  }
  if (b.type !== undefined) {
    if (b.tokens === undefined) c.fail(`${path}.type`, 'applies to tokens budgets only');
    budget.type = c.oneOf(b.type, `${path}.type`, ['input', 'output'] as const, 'input');
  }
  if (b.usd !== undefined) {
    // micro-dollars are counted as integers: a budget below one of them cannot be told apart from zero
    if (typeof b.usd !== 'number' || !Number.isFinite(b.usd) || b.usd < 0.000001 || b.usd > 1e9) c.fail(`${path}.usd`, 'must be a positive number of US dollars (at most 1e9)');
    else budget.usd = b.usd;
  }
  const windowMs = typeof b.per === 'string' ? parseDuration(b.per) : undefined;
  if (windowMs === undefined) c.fail(`${path}.per`, 'must be a duration like 1m, 1h, 24h');
  else if (windowMs < 1000 || windowMs > 31 * 86_400_000) c.fail(`${path}.per`, 'must be from 1s to 31d');
  if (b.models !== undefined) budget.models = c.stringList(b.models, `${path}.models`);
  if (b.providers !== undefined) {
    budget.providers = [];
    c.stringList(b.providers, `${path}.providers`).forEach((p, i) => {
      if ((PROVIDER_IDS as readonly string[]).includes(p)) budget.providers!.push(p as ProviderId);
      else c.fail(`${path}.providers[${i}]`, `unknown provider ${JSON.stringify(p)} (known: ${PROVIDER_IDS.join(', ')})`);
    });
  }
  return budget;
}

/** A Secret name (DNS subdomain) and a Secret data key, as Kubernetes allows them; both become file names standalone. */
const SECRET_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const SECRET_KEY = /^[-._a-zA-Z0-9]+$/;

function secretKey(c: Checker, v: unknown, path: string): string | undefined {
  if (typeof v !== 'string' || !SECRET_KEY.test(v) || v === '.' || v === '..' || v.length > 253) {
    c.fail(path, `must be a Secret data key (letters, digits, '-', '_', '.'; got ${JSON.stringify(v)})`);
    return undefined;
  }
  return v;
}

/** An IAM role ARN (any partition); the role path and name as IAM allows them. */
const ROLE_ARN = /^arn:aws(?:-[a-z]+)*:iam::\d{12}:role\/[\w+=,.@/-]{1,512}$/;
const ROLE_SESSION_NAME = /^[\w+=,.@-]{2,64}$/;

function checkCredential(c: Checker, v: unknown, path: string): Credential | undefined {
  if (!isObj(v)) {
    c.fail(path, 'must be an object');
    return undefined;
  }
  c.unknownKeys(v, path, ['provider', 'secretRef', 'azureAuth', 'accessKeyIdKey', 'sessionTokenKey', 'roleArn', 'roleSessionName', 'tenantIdKey', 'clientIdKey']);
  const provider = c.oneOf(v.provider, `${path}.provider`, PROVIDER_IDS, 'openai');
  const ref = v.secretRef;
  if (!isObj(ref) || typeof ref.name !== 'string' || typeof ref.key !== 'string') {
    c.fail(`${path}.secretRef`, 'must be { name, key }');
    return undefined;
  }
  c.unknownKeys(ref, `${path}.secretRef`, ['name', 'key']);
  if (!SECRET_NAME.test(ref.name) || ref.name.length > 253) {
    c.fail(`${path}.secretRef.name`, `must be a Secret name (lower-case DNS subdomain; got ${JSON.stringify(ref.name)})`);
  }
  secretKey(c, ref.key, `${path}.secretRef.key`);
  const out: Credential = { provider, secretRef: { name: ref.name, key: ref.key } };
  const only = (field: 'azureAuth' | 'accessKeyIdKey' | 'sessionTokenKey' | 'roleArn' | 'roleSessionName' | 'tenantIdKey' | 'clientIdKey', who: string): boolean => {
    if (v[field] === undefined) return false;
    if (provider !== who) {
      c.fail(`${path}.${field}`, `only applies to provider ${who}`);
      return false;
    }
    return true;
  };
  if (only('azureAuth', 'azure-openai')) out.azureAuth = c.oneOf(v.azureAuth, `${path}.azureAuth`, AZURE_AUTH_KINDS, 'api-key');
  if (only('accessKeyIdKey', 'bedrock')) {
    const k = secretKey(c, v.accessKeyIdKey, `${path}.accessKeyIdKey`);
    if (k !== undefined) out.accessKeyIdKey = k;
  }
  if (only('sessionTokenKey', 'bedrock')) {
    const k = secretKey(c, v.sessionTokenKey, `${path}.sessionTokenKey`);
    if (k !== undefined) out.sessionTokenKey = k;
  }
  if (only('roleArn', 'bedrock')) {
    if (typeof v.roleArn !== 'string' || !ROLE_ARN.test(v.roleArn)) c.fail(`${path}.roleArn`, `must be an IAM role ARN (arn:aws:iam::<12-digit account>:role/<name>; got ${JSON.stringify(v.roleArn)})`);
    else out.roleArn = v.roleArn;
  }
  if (only('roleSessionName', 'bedrock')) {
    if (v.roleArn === undefined) c.fail(`${path}.roleSessionName`, 'only applies with roleArn');
    else if (typeof v.roleSessionName !== 'string' || !ROLE_SESSION_NAME.test(v.roleSessionName)) {
      c.fail(`${path}.roleSessionName`, `must be 2-64 characters of letters, digits and +=,.@- (got ${JSON.stringify(v.roleSessionName)})`);
    } else out.roleSessionName = v.roleSessionName;
  }
  for (const field of ['tenantIdKey', 'clientIdKey'] as const) {
    if (!only(field, 'azure-openai')) continue;
    if (v.azureAuth !== 'entra') {
      c.fail(`${path}.${field}`, 'only applies with azureAuth: entra');
      continue;
    }
    const k = secretKey(c, v[field], `${path}.${field}`);
    if (k !== undefined) out[field] = k;
  }
  if (provider === 'azure-openai' && (v.tenantIdKey === undefined) !== (v.clientIdKey === undefined)) {
    c.fail(`${path}.${v.tenantIdKey === undefined ? 'tenantIdKey' : 'clientIdKey'}`, 'tenantIdKey and clientIdKey go together (the control plane mints the Entra ID token from tenant, client id and secretRef.key, the client secret)');
  }
  if (provider === 'bedrock' && v.accessKeyIdKey === undefined) {
    c.fail(`${path}.accessKeyIdKey`, 'bedrock needs the Secret key of the AWS access key id (secretRef.key names the secret access key)');
  }
  return out;
}

/** Default for `spec.metering.modelLabelLimit`. */
export const DEFAULT_MODEL_LABEL_LIMIT = 50;

const PRICE_FIELDS = ['input', 'output', 'cachedInput', 'cacheWriteInput'] as const;

function checkPrice(c: Checker, v: unknown, path: string): PriceEntry | undefined {
  if (!isObj(v)) {
    c.fail(path, 'must be an object');
    return undefined;
  }
  c.unknownKeys(v, path, ['model', 'provider', ...PRICE_FIELDS]);
  if (typeof v.model !== 'string' || v.model === '') c.fail(`${path}.model`, 'must be a non-empty model name or glob');
  const entry: PriceEntry = { model: String(v.model), input: 0, output: 0 };
  if (v.provider !== undefined) entry.provider = c.oneOf(v.provider, `${path}.provider`, PROVIDER_IDS, 'openai');
  for (const f of PRICE_FIELDS) {
    const x = v[f];
    if (x === undefined && (f === 'cachedInput' || f === 'cacheWriteInput')) continue;
    if (typeof x !== 'number' || !Number.isFinite(x) || x < 0) {
      c.fail(`${path}.${f}`, `must be a non-negative number (USD per million tokens), got ${JSON.stringify(x)}`);
      continue;
    }
    entry[f] = x;
  }
  return entry;
}

function checkMetering(c: Checker, m: unknown): MeteringSpec | undefined {
  if (!isObj(m)) {
    c.fail('spec.metering', 'must be an object');
    return undefined;
  }
  c.unknownKeys(m, 'spec.metering', ['prices', 'modelLabelLimit', 'identityLabels']);
  let prices: PriceEntry[] = [];
  if (m.prices !== undefined) {
    if (!Array.isArray(m.prices)) c.fail('spec.metering.prices', 'must be a list');
    else prices = m.prices.map((p, i) => checkPrice(c, p, `spec.metering.prices[${i}]`)).filter((p): p is PriceEntry => p !== undefined);
  }
  let modelLabelLimit = DEFAULT_MODEL_LABEL_LIMIT;
  if (m.modelLabelLimit !== undefined) {
    const n = m.modelLabelLimit;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 1000) {
      c.fail('spec.metering.modelLabelLimit', `must be an integer from 0 to 1000 (got ${JSON.stringify(n)})`);
    } else modelLabelLimit = n;
  }
  const identityLabels = c.stringList(m.identityLabels, 'spec.metering.identityLabels').filter((l, i) => {
    if ((IDENTITY_LABELS as readonly string[]).includes(l)) return true;
    c.fail(`spec.metering.identityLabels[${i}]`, `must be one of ${IDENTITY_LABELS.join(', ')} (got ${JSON.stringify(l)})`);
    return false;
  }) as MeteringSpec['identityLabels'];
  return { prices, modelLabelLimit, identityLabels };
}

/** Checks a parsed EgressPolicy document and fills defaults. Every problem is reported with its field path. */
export function validatePolicy(doc: unknown): PolicyResult {
  const c = new Checker();
  if (!isObj(doc)) return { ok: false, issues: [{ path: '', message: 'policy must be a YAML/JSON object' }] };
  if (doc.apiVersion !== EGRESS_POLICY_API_VERSION) {
    c.fail('apiVersion', `must be ${EGRESS_POLICY_API_VERSION} (got ${JSON.stringify(doc.apiVersion)})`);
  }
  if (doc.kind !== EGRESS_POLICY_KIND) c.fail('kind', `must be ${EGRESS_POLICY_KIND} (got ${JSON.stringify(doc.kind)})`);
  const meta = isObj(doc.metadata) ? doc.metadata : {};
  const name = typeof meta.name === 'string' && meta.name !== '' ? meta.name : 'default';
  const spec = doc.spec === undefined ? {} : doc.spec;
  const d = defaultPolicySpec();
  if (!isObj(spec)) {
    c.fail('spec', 'must be an object');
    return { ok: false, issues: c.issues };
  }
  c.unknownKeys(spec, 'spec', [
    'providers',
    'regions',
    'models',
    'budgets',
    'filters',
    'credentials',
    'unmatchedEgress',
    'metering',
    'mode',
  ]);

  let providers: ProviderId[] = d.providers;
  if (spec.providers !== undefined) {
    providers = [];
    c.stringList(spec.providers, 'spec.providers').forEach((p, i) => {
      if ((PROVIDER_IDS as readonly string[]).includes(p)) providers.push(p as ProviderId);
      else c.fail(`spec.providers[${i}]`, `unknown provider ${JSON.stringify(p)} (known: ${PROVIDER_IDS.join(', ')})`);
    });
  }

  const regions = { ...d.regions };
  if (spec.regions !== undefined) {
    if (!isObj(spec.regions)) c.fail('spec.regions', 'must be an object');
    else {
      c.unknownKeys(spec.regions, 'spec.regions', ['allow', 'unknown', 'azureResources']);
      regions.allow = c.stringList(spec.regions.allow, 'spec.regions.allow');
      regions.allow.forEach((r, i) => {
        if (!isKnownPlace(r)) {
          c.fail(`spec.regions.allow[${i}]`, `unknown region or region group ${JSON.stringify(r)} (groups: ${[...REGION_GROUPS, GLOBAL].join(', ')}; or an AWS, Google Cloud or Azure region name)`);
        }
      });
      // With an allow list, a call whose region cannot be told is denied unless said otherwise: fail closed.
      regions.unknown = c.oneOf(spec.regions.unknown, 'spec.regions.unknown', ['deny', 'allow'] as const,
        regions.allow.length > 0 ? 'deny' : 'allow');
      const az = spec.regions.azureResources;
      if (az !== undefined) {
        if (!isObj(az) || Object.values(az).some((v) => typeof v !== 'string')) {
          c.fail('spec.regions.azureResources', 'must map resource names to region strings');
        } else {
          // Host names are matched lower-case, so resource names are too.
          const map: Record<string, string> = {};
          for (const [name, region] of Object.entries(az as Record<string, string>)) {
            if (regionGroup(region) === undefined) c.fail(`spec.regions.azureResources.${name}`, `unknown Azure region ${JSON.stringify(region)}`);
            map[name.toLowerCase()] = region;
          }
          regions.azureResources = map;
        }
      }
    }
  }

  const models = { ...d.models };
  if (spec.models !== undefined) {
    if (!isObj(spec.models)) c.fail('spec.models', 'must be an object');
    else {
      c.unknownKeys(spec.models, 'spec.models', ['allow', 'deny']);
      models.allow = c.stringList(spec.models.allow, 'spec.models.allow');
      models.deny = c.stringList(spec.models.deny, 'spec.models.deny');
    }
  }

  const listOf = <T>(v: unknown, path: string, check: (c: Checker, x: unknown, p: string) => T | undefined): T[] => {
    if (v === undefined) return [];
    if (!Array.isArray(v)) {
      c.fail(path, 'must be a list');
      return [];
    }
    return v.map((x, i) => check(c, x, `${path}[${i}]`)).filter((x): x is T => x !== undefined);
  };

  const metering = spec.metering === undefined ? undefined : checkMetering(c, spec.metering);

  const result: EgressPolicySpec = {
    providers,
    regions,
    models,
    budgets: listOf(spec.budgets, 'spec.budgets', checkBudget),
    filters: Array.isArray(spec.filters) ? checkFilters(spec.filters, (p, m) => c.fail(p, m)) : listOf<Filter>(spec.filters, 'spec.filters', () => undefined),
    credentials: listOf(spec.credentials, 'spec.credentials', checkCredential),
    unmatchedEgress: c.oneOf(spec.unmatchedEgress, 'spec.unmatchedEgress', ['passthrough', 'deny'] as const, 'passthrough'),
    ...(metering && { metering }),
    ...(spec.mode !== undefined && { mode: c.oneOf(spec.mode, 'spec.mode', POLICY_MODES, 'enforce') }),
  };
  if (c.issues.length === 0) c.issues.push(...notEnforced(result));
  if (c.issues.length > 0) return { ok: false, issues: c.issues };
  const metadata: EgressPolicy['metadata'] = { name };
  if (typeof meta.namespace === 'string') metadata.namespace = meta.namespace;
  return {
    ok: true,
    policy: { apiVersion: EGRESS_POLICY_API_VERSION, kind: EGRESS_POLICY_KIND, metadata, spec: result },
  };
}

export function formatIssues(issues: PolicyIssue[]): string {
  return issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join('; ');
}
