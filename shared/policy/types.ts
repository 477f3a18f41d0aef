// The EgressPolicy document (aigress.io/v1alpha1), as users write it. Field names follow ARCHITECTURE.md.

export const PROVIDER_IDS = [
  'openai',
  'azure-openai',
  'anthropic',
  'gemini',
  'vertex-ai',
  'bedrock',
  'mistral',
] as const;
export type ProviderId = (typeof PROVIDER_IDS)[number];

export type UnmatchedEgress = 'passthrough' | 'deny';

export interface RegionRules {
  /** Region groups (eu, us, apac, …) or exact regions (europe-west4, eu-central-1). Empty = no region rule. */
  allow: string[];
  /** What to do when the region of a call cannot be told. */
  unknown: 'deny' | 'allow';
  /** Azure OpenAI resource name → region; the host alone does not say where an Azure resource lives. */
  azureResources?: Record<string, string>;
}

export interface ModelRules {
  allow: string[];
  deny: string[];
}

/** Who shares one budget: the proxy's own pod, its owning workload, its ServiceAccount, or its namespace. */
export const BUDGET_SCOPES = ['pod', 'workload', 'serviceaccount', 'namespace'] as const;
export type BudgetScope = (typeof BUDGET_SCOPES)[number];

/** What a Redis outage does to a shared budget: refuse (503) or fall back to a local share of the budget. */
export const STORE_ERROR_MODES = ['FailClosed', 'FailOpen'] as const;
export type StoreErrorMode = (typeof STORE_ERROR_MODES)[number];

/**
 * One budget (docs/budgets.md). Exactly one of `tokens` and `usd`. Several entries apply together; the
 * strictest decides.
 */
export interface Budget {
  /** Billed tokens per window (input + output; or only `type`). */
  tokens?: number;
  /** Count only input or only output tokens (with `tokens`). */
  type?: 'input' | 'output';
  /** Estimated cost in USD per window, from the price table. */
  usd?: number;
  /** Window length: 1m, 1h, 1d or any duration (30s, 6h). */
  per: string;
  scope: BudgetScope;
  /** Model globs the budget counts (all models when absent). */
  models?: string[];
  /** Providers the budget counts (all when absent). */
  providers?: ProviderId[];
  /** Default FailClosed. Only shared scopes reach a store that can fail. */
  onStoreError: StoreErrorMode;
}

// Filters (spec.filters) have their own module: their types, checks and defaults.
import type { Filter } from './filters.js';
export type {
  ExternalFilter,
  Filter,
  FilterAction,
  FilterPhase,
  PiiFilter,
  PromptInjectionFilter,
  RegexFilter,
  TransformFilter,
} from './filters.js';

/** USD per million tokens for models matching `model` (a glob), optionally only on one provider. */
export interface PriceEntry {
  model: string;
  provider?: ProviderId;
  input: number;
  output: number;
  /** Input tokens read from a cache; priced as `input` when absent. */
  cachedInput?: number;
  /** Input tokens written to a cache (Anthropic, Bedrock); priced as `input` when absent. */
  cacheWriteInput?: number;
}

/** Pod identity fields that may be put on metrics as labels (they always go into the log line). */
export const IDENTITY_LABELS = ['namespace', 'pod', 'serviceAccount', 'workload'] as const;
export type IdentityLabel = (typeof IDENTITY_LABELS)[number];

export interface MeteringSpec {
  /** Searched before the shipped price table; first match wins. */
  prices: PriceEntry[];
  /** Distinct model names outside the price catalogue that get their own label before the rest fold into `other`. */
  modelLabelLimit: number;
  identityLabels: IdentityLabel[];
}

/** A key of a Secret (cluster: in the control plane's namespace) or the file `DIR/<name>/<key>` (standalone). */
export interface SecretRef {
  name: string;
  key: string;
}

/** How an Azure OpenAI credential is presented: an API key (`api-key`) or an Entra ID access token (Bearer). */
export const AZURE_AUTH_KINDS = ['api-key', 'entra'] as const;
export type AzureAuth = (typeof AZURE_AUTH_KINDS)[number];

/**
 * A managed credential: the proxy puts it on every allowed call to `provider` in place of the app's own.
 * `secretRef` holds the secret value: the API key (openai, mistral, anthropic, gemini, azure-openai), an Entra ID
 * access token (azure-openai with `azureAuth: entra`), a service-account key JSON (vertex-ai: an access token is
 * minted from it), or the AWS secret access key (bedrock, beside `accessKeyIdKey` and `sessionTokenKey`).
 */
export interface Credential {
  provider: ProviderId;
  secretRef: SecretRef;
  /** azure-openai only; default api-key. */
  azureAuth?: AzureAuth;
  /** bedrock only (required): the key, in the same Secret, of the AWS access key id. */
  accessKeyIdKey?: string;
  /** bedrock only: the key, in the same Secret, of an STS session token (temporary credentials, passed as given). */
  sessionTokenKey?: string;
  /**
   * bedrock only: the control plane calls STS AssumeRole for this role with the Secret's keys, and proxies get
   * only the role's temporary credentials. Without it, long-lived keys are exchanged with GetSessionToken.
   */
  roleArn?: string;
  /** bedrock with roleArn only: the AssumeRole session name (CloudTrail shows it); default `aigress`. */
  roleSessionName?: string;
  /**
   * azure-openai with azureAuth entra only, together with clientIdKey: the key, in the same Secret, of the Entra
   * ID tenant. secretRef.key then names the app registration's client secret, and the control plane mints the
   * access token (client-credentials flow); without them secretRef.key holds an access token, passed as given.
   */
  tenantIdKey?: string;
  /** azure-openai with azureAuth entra only, together with tenantIdKey: the key of the app's client id. */
  clientIdKey?: string;
}

/** enforce: denials are answered; audit: every decision is computed, logged and counted, and the call passes. */
export const POLICY_MODES = ['enforce', 'audit'] as const;
export type PolicyMode = (typeof POLICY_MODES)[number];

export interface EgressPolicySpec {
  /** Absent means enforce. */
  mode?: PolicyMode;
  /** Providers whose hosts are intercepted. Hosts of providers not listed are treated as unmatched egress. */
  providers: ProviderId[];
  regions: RegionRules;
  models: ModelRules;
  budgets: Budget[];
  filters: Filter[];
  credentials: Credential[];
  unmatchedEgress: UnmatchedEgress;
  /** Price table and metric label options; defaults apply when absent. */
  metering?: MeteringSpec;
}

export interface EgressPolicy {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  spec: EgressPolicySpec;
}
