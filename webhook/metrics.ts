import { Counter, Histogram, Registry } from 'prom-client';

// The control plane's Prometheus metrics. Each server gets its own registry (no global state), so tests and
// several servers in one process never share counts; other control-plane parts register on the same one.

export interface WebhookMetrics {
  registry: Registry;
  admissions: Counter<'result' | 'reason'>;
  admissionDuration: Histogram<'result'>;
}

export function createWebhookMetrics(registry: Registry = new Registry()): WebhookMetrics {
  return {
    registry,
    admissions: new Counter({
      name: 'aigress_webhook_admissions_total',
      help: 'Admission requests answered, by result (injected, updated, skipped, denied, allowed, bad-request, error) and reason.',
      labelNames: ['result', 'reason'] as const,
      registers: [registry],
    }),
    admissionDuration: new Histogram({
      name: 'aigress_webhook_admission_duration_seconds',
      help: 'Time from receiving an admission request (body included) to its answer, by result.',
      labelNames: ['result'] as const,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
  };
}
