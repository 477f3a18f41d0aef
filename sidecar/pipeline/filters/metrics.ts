import { Counter, Histogram, type Registry } from 'prom-client';

// The filter metrics (docs/metrics.md): what filters did, how long they took, and how often they could not
// decide. Registered once per registry, whether or not the policy has filters, so the admin port always lists
// them. Labels are bounded: `filter` is a name from the policy, `type`/`action`/`phase`/`mode` closed sets.

export interface FilterMetrics {
  readonly actions: Counter;
  readonly duration: Histogram;
  readonly failures: Counter;
}

/** Filter work is in-process text scanning (microseconds) or a guard call (milliseconds). */
export const FILTER_SECONDS_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

const byRegistry = new WeakMap<Registry, FilterMetrics>();

export function filterMetrics(registry: Registry): FilterMetrics {
  let m = byRegistry.get(registry);
  if (m) return m;
  const counter = (name: string, help: string, labelNames: string[]): Counter =>
    (registry.getSingleMetric(name) as Counter | undefined) ?? new Counter({ name, help, labelNames, registers: [registry] });
  m = {
    actions: counter('aigress_filter_actions_total', 'Filter actions taken (redact, block, log, restore, rewrite, allow), per filter and phase.', ['filter', 'type', 'action', 'phase']),
    duration:
      (registry.getSingleMetric('aigress_filter_duration_seconds') as Histogram | undefined) ??
      new Histogram({
        name: 'aigress_filter_duration_seconds',
        help: 'Time a filter spent on one request body, response body or stream event.',
        labelNames: ['filter', 'type', 'phase'],
        buckets: FILTER_SECONDS_BUCKETS,
        registers: [registry],
      }),
    failures: counter('aigress_filter_failures_total', 'Filters that could not decide (uninspectable body, guard error or timeout), by failure mode.', ['filter', 'mode']),
  };
  byRegistry.set(registry, m);
  return m;
}
