// Plays the proxy's part around the pipeline: builds Exchanges, runs request processors in order (applying
// rewrites as the proxy does), and streams a response through the observers, each fed the previous one's output.
import type { IncomingHttpHeaders } from 'node:http';
import { Registry } from 'prom-client';
import type { EgressPolicy } from '../../../shared/policy/types.js';
import { validatePolicy } from '../../../shared/policy/validate.js';
import { compileHostMatcher } from '../../../shared/providers/index.js';
import { buildPipeline, type Exchange, type Pipeline, type PodIdentity, type RequestVerdict } from '../../../sidecar/pipeline/index.js';

export function policy(spec: Record<string, unknown> = {}, name = 'default', namespace = 'team-a'): EgressPolicy {
  const r = validatePolicy({ apiVersion: 'aigress.io/v1alpha1', kind: 'EgressPolicy', metadata: { name, namespace }, spec });
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return r.policy;
}

export function setup(p: EgressPolicy = policy(), registry = new Registry()): { pipeline: Pipeline; registry: Registry; policy: EgressPolicy } {
  return { pipeline: buildPipeline(p, { registry }), registry, policy: p };
}

export function exchange(
  p: EgressPolicy,
  host: string,
  path: string,
  body: unknown = '',
  opts: { method?: string; headers?: IncomingHttpHeaders; identity?: PodIdentity } = {},
): Exchange {
  const adapter = compileHostMatcher(p.spec.providers)(host);
  if (!adapter) throw new Error(`no adapter for ${host}`);
  const buf = Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  return {
    request: { host, adapter, method: opts.method ?? 'POST', path, headers: { 'content-type': 'application/json', ...opts.headers }, body: buf },
    policy: p,
    identity: opts.identity ?? { namespace: 'team-a', pod: 'chat-7d9f-abcde', serviceAccount: 'chat', workload: 'chat' },
    startedAt: process.hrtime.bigint(),
    facts: {},
  };
}

/** Runs the request processors until one denies; returns the verdict and the request as it would be forwarded. */
export async function runRequest(pipeline: Pipeline, ex: Exchange): Promise<{ verdict: RequestVerdict; ex: Exchange }> {
  for (const proc of pipeline.request) {
    const v = await proc.onRequest(ex);
    if (v.action === 'deny') return { verdict: v, ex };
    if (v.action === 'rewrite') {
      const headers: IncomingHttpHeaders = { ...ex.request.headers };
      for (const [k, val] of Object.entries(v.headers ?? {})) {
        if (val === null) delete headers[k];
        else headers[k] = val;
      }
      (ex as { request: Exchange['request'] }).request = { ...ex.request, body: v.body, headers };
    }
  }
  return { verdict: { action: 'continue' }, ex };
}

/** Streams `chunks` through the response observers; returns what the client receives. */
export function runResponse(pipeline: Pipeline, ex: Exchange, status: number, headers: IncomingHttpHeaders, chunks: Buffer[], complete = true): Buffer {
  const observers = pipeline.response.map((p) => p.onResponse(ex, { status, headers })).filter((o) => o !== undefined);
  const out: Buffer[] = [];
  const pass = (chunk: Buffer, from: number): void => {
    let c = chunk;
    for (let i = from; i < observers.length; i++) c = observers[i]!.onChunk?.(c) ?? c;
    if (c.length > 0) out.push(c);
  };
  for (const c of chunks) pass(c, 0);
  if (complete) {
    observers.forEach((o, i) => {
      const rest = o.flush?.();
      if (rest && rest.length > 0) pass(rest, i + 1);
    });
  }
  for (const o of observers) o.onEnd?.(complete);
  return Buffer.concat(out);
}

/** The value of a metric series whose labels include `labels`; 0 when there is no such series. */
export async function metric(registry: Registry, name: string, labels: Record<string, string | number> = {}): Promise<number> {
  const base = name.replace(/_(count|sum|bucket)$/, '');
  const m = registry.getSingleMetric(base);
  if (!m) return 0;
  const data = await m.get();
  const values = data.values as { value: number; labels: object; metricName?: string }[];
  const hits = values.filter(
    (v) => (v.metricName ?? base) === name && Object.entries(labels).every(([k, val]) => (v.labels as Record<string, unknown>)[k] === val),
  );
  return hits.reduce((s, v) => s + v.value, 0);
}

/** Label sets of every series of a metric (for asserting which labels exist). */
export async function series(registry: Registry, name: string): Promise<Record<string, string | number>[]> {
  const m = registry.getSingleMetric(name);
  if (!m) return [];
  return (await m.get()).values.map((v) => v.labels as Record<string, string | number>);
}
