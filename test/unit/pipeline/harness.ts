// Plays the proxy's part around the pipeline with the real runner: builds Exchanges as the proxy does, runs
// the request phases, and streams a response through the runner's plan into a collecting sink.
import type { IncomingHttpHeaders } from 'node:http';
import { Registry } from 'prom-client';
import { createLogger } from '../../../shared/log.js';
import type { EgressPolicy } from '../../../shared/policy/types.js';
import { validatePolicy } from '../../../shared/policy/validate.js';
import { compileHostMatcher } from '../../../shared/providers/index.js';
import {
  buildPipeline,
  newExchange,
  PipelineRunner,
  type Deny,
  type Exchange,
  type Pipeline,
  type PipelineServices,
  type PodIdentity,
  type ResponseSink,
  type Verdict,
} from '../../../sidecar/pipeline/index.js';
import type { ExchangeAbort } from '../../../sidecar/pipeline/runner.js';
import { upstreamRequestHeaders } from '../../../sidecar/proxy/headers.js';

export function policy(spec: Record<string, unknown> = {}, name = 'default', namespace = 'team-a'): EgressPolicy {
  const r = validatePolicy({ apiVersion: 'aigress.io/v1alpha1', kind: 'EgressPolicy', metadata: { name, namespace }, spec });
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return r.policy;
}

const quiet = createLogger('test', { level: 'silent' });

export function services(registry = new Registry()): PipelineServices {
  return { registry, log: quiet, now: Date.now };
}

const runners = new WeakMap<Registry, PipelineRunner>();
/** One runner per registry, as the proxy has one per process. */
export function runnerFor(registry: Registry): PipelineRunner {
  let r = runners.get(registry);
  if (!r) runners.set(registry, (r = new PipelineRunner({ registry, log: quiet })));
  return r;
}

const pipelineRegistry = new WeakMap<Pipeline, Registry>();

export function setup(p: EgressPolicy = policy(), registry = new Registry()): { pipeline: Pipeline; registry: Registry; policy: EgressPolicy } {
  const pipeline = buildPipeline(p, services(registry));
  pipelineRegistry.set(pipeline, registry);
  return { pipeline, registry, policy: p };
}

/** Registers a hand-built pipeline's registry, so runRequest/runResponse count into it. */
export function withRegistry(pipeline: Pipeline, registry: Registry): Pipeline {
  pipelineRegistry.set(pipeline, registry);
  return pipeline;
}

const runnerOf = (pipeline: Pipeline): PipelineRunner => runnerFor(pipelineRegistry.get(pipeline) ?? new Registry());

export function exchange(
  p: EgressPolicy,
  host: string,
  path: string,
  body: unknown = '',
  opts: { method?: string; headers?: IncomingHttpHeaders; identity?: PodIdentity; signal?: AbortSignal | ExchangeAbort } = {},
): Exchange {
  const adapter = compileHostMatcher(p.spec.providers)(host);
  if (!adapter) throw new Error(`no adapter for ${host}`);
  const buf = Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  const appHeaders: IncomingHttpHeaders = { host, 'content-type': 'application/json', ...opts.headers };
  const raw: string[] = [];
  for (const [k, v] of Object.entries(appHeaders)) if (v !== undefined) for (const x of Array.isArray(v) ? v : [v]) raw.push(k, x);
  return newExchange({
    adapter,
    host,
    method: opts.method ?? 'POST',
    path,
    headers: upstreamRequestHeaders(raw),
    appHeaders,
    body: buf,
    hadBody: buf.length > 0,
    policy: p,
    identity: opts.identity ?? { namespace: 'team-a', pod: 'chat-7d9f-abcde', serviceAccount: 'chat', workload: 'chat' },
    signal: opts.signal ?? new AbortController().signal,
  });
}

/** Runs the request phases; returns the verdict and the exchange, its request as it would be forwarded. */
export async function runRequest(pipeline: Pipeline, ex: Exchange): Promise<{ verdict: Verdict; ex: Exchange; gone: boolean }> {
  const r = await runnerOf(pipeline).request(pipeline, ex);
  if (r.kind === 'deny') return { verdict: r.deny, ex, gone: false };
  return { verdict: { action: 'continue' }, ex, gone: r.kind === 'gone' };
}

/** What the app received from one response. */
export interface Received {
  body: Buffer;
  /** The head went out with the provider's content-length kept. */
  sized?: boolean;
  /** The app got a denial instead of the provider's answer. */
  denied?: Deny;
  destroyed: boolean;
  ended: boolean;
  /** Times the runner paused the upstream. */
  pauses: number;
  aborted: boolean;
}

/** A sink that collects what the app would get; `slowWrites` makes every write report a full buffer. */
export function collectingSink(opts: { slowWrites?: boolean } = {}): { sink: ResponseSink; got: Received; drain(): void } {
  const got: Received = { body: Buffer.alloc(0), destroyed: false, ended: false, pauses: 0, aborted: false };
  const parts: Buffer[] = [];
  let waiters: (() => void)[] = [];
  const sink: ResponseSink = {
    head(sized) {
      got.sized = sized;
    },
    write(chunk) {
      parts.push(chunk);
      got.body = Buffer.concat(parts);
      return !opts.slowWrites;
    },
    onDrain(cb) {
      waiters.push(cb);
    },
    end() {
      got.ended = true;
    },
    deny(d) {
      got.denied = d;
      got.ended = true;
    },
    destroy() {
      got.destroyed = true;
    },
    pauseUpstream() {
      got.pauses++;
    },
    resumeUpstream() {},
    abortUpstream() {
      got.aborted = true;
    },
  };
  return {
    sink,
    got,
    drain() {
      const w = waiters;
      waiters = [];
      for (const f of w) f();
    },
  };
}

/**
 * Streams `chunks` through the runner's response plan and ends the exchange; returns what the client receives.
 * `complete: false` plays a stream that broke before its end.
 */
export async function runResponse(
  pipeline: Pipeline,
  ex: Exchange,
  status: number,
  headers: IncomingHttpHeaders,
  chunks: Buffer[],
  complete = true,
): Promise<Buffer> {
  return (await respond(pipeline, ex, status, headers, chunks, complete)).body;
}

export async function respond(
  pipeline: Pipeline,
  ex: Exchange,
  status: number,
  headers: IncomingHttpHeaders,
  chunks: Buffer[],
  complete = true,
): Promise<Received> {
  const runner = runnerOf(pipeline);
  const { sink, got } = collectingSink();
  const driver = runner.response(pipeline, ex, { status, headers }, sink);
  if (!driver.holdsHead) sink.head(driver.sized);
  for (const c of chunks) driver.data(c);
  if (complete) driver.end();
  // Let async transforms finish.
  for (let i = 0; i < 50 && complete && !got.ended && !got.destroyed; i++) await new Promise((r) => setImmediate(r));
  await runner.end(ex, { complete: complete && got.ended && !got.destroyed, forwarded: true, status, framingFailed: driver.framingFailed });
  return got;
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
