import type { Registry } from 'prom-client';
import type { EgressPolicy, IdentityLabel } from '../../shared/policy/types.js';
import { DEFAULT_MODEL_LABEL_LIMIT } from '../../shared/policy/validate.js';
import { compilePriceTable, type PriceTable } from '../../shared/providers/prices.js';
import { identityLabelValues, meteringMetrics, type MeteringMetrics } from './metrics.js';
import { modelLabeler, type ModelLabeler } from './model-label.js';
import type { PodIdentity } from './types.js';

/** What the processors of one policy share: compiled once per policy, metrics and label state once per registry. */
export interface PipelineContext {
  readonly policy: EgressPolicy;
  /** `namespace/name` as denial messages name the policy. */
  readonly policyName: string;
  /** spec.mode is audit: every denial is recorded as would-deny and the request goes on. */
  readonly audit: boolean;
  readonly metrics: MeteringMetrics;
  readonly labeler: ModelLabeler;
  readonly prices: PriceTable;
  identityLabels(identity: PodIdentity): Record<string, string>;
}

export function pipelineContext(policy: EgressPolicy, registry: Registry): PipelineContext {
  const metering = policy.spec.metering;
  const prices = compilePriceTable(metering?.prices ?? []);
  const labeler = modelLabeler(registry);
  labeler.configure(metering?.modelLabelLimit ?? DEFAULT_MODEL_LABEL_LIMIT, prices);
  const configured: readonly IdentityLabel[] = metering?.identityLabels ?? [];
  const { namespace, name } = policy.metadata;
  return {
    policy,
    policyName: namespace ? `${namespace}/${name}` : name,
    audit: policy.spec.mode === 'audit',
    metrics: meteringMetrics(registry),
    labeler,
    prices,
    identityLabels: identityLabelCache(configured),
  };
}

/**
 * The proxy passes one identity object to every exchange, so its labels are built once, not per request and
 * metric. The result is shared: callers spread it, never change it.
 */
function identityLabelCache(configured: readonly IdentityLabel[]): (identity: PodIdentity) => Record<string, string> {
  let lastIdentity: PodIdentity | undefined;
  let lastLabels: Record<string, string> = {};
  return (identity) => {
    if (identity !== lastIdentity) {
      lastLabels = Object.freeze(identityLabelValues(identity, configured)) as Record<string, string>;
      lastIdentity = identity;
    }
    return lastLabels;
  };
}
