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

export interface Budget {
  tokens: number;
  /** Window, e.g. 1m, 1h, 24h. */
  per: string;
  scope: 'pod' | 'namespace' | 'workload';
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

export interface Credential {
  provider: ProviderId;
  secretRef: { name: string; key: string };
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
