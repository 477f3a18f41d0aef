// docs/metrics.md and the sample dashboard must describe the metrics the code registers, with their labels.
import { readFileSync } from 'node:fs';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { IDENTITY_LABEL_NAMES } from '../../../sidecar/pipeline/metrics.js';
import { createMetrics } from '../../../sidecar/proxy/metrics.js';
import { auditWriteErrors } from '../../../sidecar/telemetry/audit-sink.js';
import { policy, runnerFor, setup } from './harness.js';

const read = (p: string) => readFileSync(new URL(`../../../${p}`, import.meta.url), 'utf8');
const IDENTITY = new Set(Object.values(IDENTITY_LABEL_NAMES));

/** name → label names, for the metrics the pipeline registers plus the proxy's request counter. */
function registered(): Map<string, string[]> {
  // a policy with a budget, so the budget processor registers its metrics too
  const { registry } = setup(policy({ budgets: [{ tokens: 1000, per: '1m', scope: 'pod' }] }), new Registry());
  runnerFor(registry); // the processor runner registers the denial and failure counters
  auditWriteErrors(registry); // registered by a file audit log
  const proxy = createMetrics(() => 0).registry;
  const out = new Map<string, string[]>();
  for (const m of [...registry.getMetricsAsArray(), proxy.getSingleMetric('aigress_requests_total')!]) {
    const { name, labelNames } = m as unknown as { name: string; labelNames?: string[] };
    out.set(name, (labelNames ?? []).filter((l) => !IDENTITY.has(l)));
  }
  return out;
}

describe('docs/metrics.md', () => {
  it('lists every metric with exactly the labels it is registered with', () => {
    const table = new Map<string, string[]>();
    for (const line of read('docs/metrics.md').split('\n')) {
      const m = /^\| `((?:aigress|gen_ai)_[a-z_]+)` \| (?:counter|histogram|gauge) \| ([^|]+) \|/.exec(line);
      if (m) table.set(m[1]!, [...m[2]!.matchAll(/`([a-z_]+)`/g)].map((x) => x[1]!));
    }
    const code = registered();
    expect([...table.keys()].sort()).toEqual([...code.keys()].sort());
    for (const [name, labels] of code) expect(table.get(name)!.sort(), name).toEqual([...labels].sort());
  });
});

describe('docs/grafana-dashboard.json', () => {
  const dash = JSON.parse(read('docs/grafana-dashboard.json')) as { panels: { title: string; targets?: { expr: string }[] }[] };
  const exprs = dash.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ title: p.title, expr: t.expr })));

  it('queries only metrics and labels that exist', () => {
    const code = registered();
    expect(exprs.length).toBeGreaterThan(15);
    for (const { title, expr } of exprs) {
      for (const [, name, selector] of expr.matchAll(/\b((?:aigress|gen_ai)_[a-z_]+)\{([^}]*)\}/g)) {
        const base = name!.replace(/_(bucket|count|sum)$/, '');
        expect(code.has(base), `${title}: ${name}`).toBe(true);
        const histogram = base !== name;
        for (const [, label] of selector!.matchAll(/([a-z_]+)\s*(?:=~|!=|=)/g)) {
          // target labels the Prometheus scrape adds, not aigress: namespace always, workload by the chart's PodMonitor
          if (label === 'namespace' || label === 'workload') continue;
          const known = code.get(base)!.includes(label!) || (histogram && label === 'le');
          expect(known, `${title}: ${name} has no label ${label}`).toBe(true);
        }
      }
    }
  });

  it('has balanced parentheses and braces in every query', () => {
    for (const { title, expr } of exprs) {
      let depth = 0;
      for (const c of expr) {
        if (c === '(' || c === '{' || c === '[') depth++;
        if (c === ')' || c === '}' || c === ']') depth--;
        expect(depth, title).toBeGreaterThanOrEqual(0);
      }
      expect(depth, title).toBe(0);
    }
  });
});
