import { Counter, Histogram, type Registry } from 'prom-client';
import { IDENTITY_LABELS, type IdentityLabel } from '../../shared/policy/types.js';
import type { PodIdentity } from './types.js';

// The metrics the policy and metering processors own. They are registered once per registry (the pipeline is
// rebuilt on every policy change with the same registry) and reused by every later build. See docs/metrics.md.

/** Label names for pod identity on metrics; `source_` keeps them clear of the scrape's own namespace/pod labels. */
export const IDENTITY_LABEL_NAMES: Record<IdentityLabel, string> = {
  namespace: 'source_namespace',
  pod: 'source_pod',
  serviceAccount: 'source_service_account',
  workload: 'source_workload',
};
const IDENTITY = IDENTITY_LABELS.map((l) => IDENTITY_LABEL_NAMES[l]);

/** OpenTelemetry's advised buckets for gen_ai.client.token.usage. */
export const TOKEN_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864];
/** OpenTelemetry's advised buckets for gen_ai.client.operation.duration and time_to_first_chunk. */
export const SECONDS_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92];

const GEN_AI = ['gen_ai_operation_name', 'gen_ai_provider_name', 'gen_ai_request_model'];

export interface MeteringMetrics {
  readonly tokens: Counter;
  readonly cost: Counter;
  readonly usageMissing: Counter;
  readonly tokenUsage: Histogram;
  readonly duration: Histogram;
  readonly timeToFirstChunk: Histogram;
}

const byRegistry = new WeakMap<Registry, MeteringMetrics>();

function counter(registry: Registry, name: string, help: string, labels: string[]): Counter {
  const existing = registry.getSingleMetric(name);
  if (existing) return existing as Counter;
  return new Counter({ name, help, labelNames: [...labels, ...IDENTITY], registers: [registry] });
}

function histogram(registry: Registry, name: string, help: string, labels: string[], buckets: number[]): Histogram {
  const existing = registry.getSingleMetric(name);
  if (existing) return existing as Histogram;
  return new Histogram({ name, help, labelNames: [...labels, ...IDENTITY], buckets, registers: [registry] });
}

/** The metering metrics of `registry`, registered on first use. */
export function meteringMetrics(registry: Registry): MeteringMetrics {
  let m = byRegistry.get(registry);
  if (m) return m;
  m = {
    tokens: counter(registry, 'aigress_tokens_total', 'Tokens reported by providers, by type (input, output, cached_input, reasoning).', [
      'provider',
      'model',
      'type',
    ]),
    cost: counter(registry, 'aigress_estimated_cost_usd_total', 'Estimated cost in USD from the price table.', ['provider', 'model']),
    usageMissing: counter(registry, 'aigress_usage_missing_total', 'Successful responses whose token usage could not be read.', [
      'provider',
      'operation',
      'model',
      'reason',
    ]),
    tokenUsage: histogram(registry, 'gen_ai_client_token_usage', 'Number of input and output tokens used (OpenTelemetry GenAI).', [
      ...GEN_AI,
      'gen_ai_token_type',
    ], TOKEN_BUCKETS),
    duration: histogram(registry, 'gen_ai_client_operation_duration_seconds', 'GenAI operation duration (OpenTelemetry GenAI).', [
      ...GEN_AI,
      'error_type',
    ], SECONDS_BUCKETS),
    timeToFirstChunk: histogram(
      registry,
      'gen_ai_client_operation_time_to_first_chunk_seconds',
      'Time from the request to the first chunk of a streamed response (OpenTelemetry GenAI).',
      GEN_AI,
      SECONDS_BUCKETS,
    ),
  };
  byRegistry.set(registry, m);
  return m;
}

/** The identity labels a policy puts on metrics; fields the pod does not know are left out, not emptied. */
export function identityLabelValues(identity: PodIdentity, configured: readonly IdentityLabel[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const l of configured) {
    const v = identity[l];
    if (v) out[IDENTITY_LABEL_NAMES[l]] = v;
  }
  return out;
}

export interface RunnerMetrics {
  /** Denials by reason; mode=audit counts the ones audit mode let pass (would-deny). */
  readonly denials: Counter;
  readonly failures: Counter;
}

const runnerByRegistry = new WeakMap<Registry, RunnerMetrics>();

/** The processor runner's metrics of `registry`, registered on first use. */
export function runnerMetrics(registry: Registry): RunnerMetrics {
  let m = runnerByRegistry.get(registry);
  if (m) return m;
  m = {
    denials: counter(registry, 'aigress_denials_total', 'Requests policy denied (mode=enforce: answered by the proxy; mode=audit: would have been denied, let pass).', [
      'provider',
      'reason',
      'mode',
    ]),
    failures: (registry.getSingleMetric('aigress_processor_failures_total') as Counter | undefined) ??
      new Counter({
        name: 'aigress_processor_failures_total',
        help: 'Policy steps that threw or missed their deadline, by failure mode (closed: the request was refused; open: the step was skipped).',
        labelNames: ['processor', 'type', 'phase', 'mode'],
        registers: [registry],
      }),
  };
  runnerByRegistry.set(registry, m);
  return m;
}
