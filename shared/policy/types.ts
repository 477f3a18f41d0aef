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

export type FilterPhase = 'request' | 'response' | 'both';
export type FilterAction = 'redact' | 'block' | 'log';

export interface PiiFilter {
  type: 'pii';
  detect: string[];
  action: FilterAction;
  phase: FilterPhase;
}
export interface RegexFilter {
  type: 'regex';
  pattern: string;
  action: FilterAction;
  phase: FilterPhase;
}
export interface ExternalFilter {
  type: 'external';
  url: string;
  timeout: string;
  onError: 'deny' | 'allow';
  phase: FilterPhase;
}
export type Filter = PiiFilter | RegexFilter | ExternalFilter;

export interface Credential {
  provider: ProviderId;
  secretRef: { name: string; key: string };
}

export interface EgressPolicySpec {
  /** Providers whose hosts are intercepted. Hosts of providers not listed are treated as unmatched egress. */
  providers: ProviderId[];
  regions: RegionRules;
  models: ModelRules;
  budgets: Budget[];
  filters: Filter[];
  credentials: Credential[];
  unmatchedEgress: UnmatchedEgress;
}

export interface EgressPolicy {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  spec: EgressPolicySpec;
}
