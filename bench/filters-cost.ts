// Measures what filters add per request and per stream event, through the real runner (no sockets).
// Run: npx esbuild bench/filters-cost.ts --bundle --platform=node --format=esm --packages=external --outfile=bench/.filters-cost.mjs && node bench/.filters-cost.mjs
import { Registry } from 'prom-client';
import { createLogger } from '../shared/log.js';
import { validatePolicy } from '../shared/policy/validate.js';
import { compileHostMatcher } from '../shared/providers/index.js';
import { buildPipeline, newExchange, PipelineRunner, type Pipeline, type ResponseSink } from '../sidecar/pipeline/index.js';
import { upstreamRequestHeaders } from '../sidecar/proxy/headers.js';
import type { EgressPolicy } from '../shared/policy/types.js';

const log = createLogger('bench', { level: 'silent' });
const registry = new Registry();
const runner = new PipelineRunner({ registry, log });

function policyOf(filters: unknown[]): EgressPolicy {
  const r = validatePolicy({ apiVersion: 'aigress.io/v1alpha1', kind: 'EgressPolicy', metadata: { name: 'b', namespace: 'n' }, spec: { filters } });
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return r.policy;
}

const text = 'Please summarise the quarterly report for the board and keep it short. '.repeat(4);
const body = Buffer.from(JSON.stringify({
  model: 'gpt-4o', stream: true,
  messages: [{ role: 'system', content: 'You are a helpful assistant.' }, ...Array.from({ length: 9 }, (_, i) => ({ role: i % 2 ? 'assistant' : 'user', content: `${text} Contact ada.lovelace@example.com, card 4111 1111 1111 1111.` }))],
}));

function exchange(p: EgressPolicy) {
  const adapter = compileHostMatcher(p.spec.providers)('api.openai.com')!;
  return newExchange({ adapter, host: 'api.openai.com', method: 'POST', path: '/v1/chat/completions', headers: upstreamRequestHeaders(['content-type', 'application/json']), appHeaders: { 'content-type': 'application/json' }, body, hadBody: true, policy: p, identity: { namespace: 'n', pod: 'p', workload: 'w' }, signal: new AbortController().signal });
}

const sink = (): ResponseSink => ({ head() {}, write: () => true, onDrain() {}, end() {}, deny() {}, destroy() {}, pauseUpstream() {}, resumeUpstream() {}, abortUpstream() {} });

const events = 500;
const stream = Buffer.from(Array.from({ length: events }, (_, i) => `data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content: i % 50 === 0 ? ' [EMA' : i % 50 === 1 ? 'IL_1] ' : ' word' } }] })}\n\n`).join('') + 'data: [DONE]\n\n');

async function once(p: EgressPolicy, pipeline: Pipeline): Promise<[number, number]> {
  const N = 1000;
  let t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) {
    const ex = exchange(p);
    await runner.request(pipeline, ex);
    ex.request.body.bytes();
  }
  const perRequest = Number(process.hrtime.bigint() - t0) / N / 1000;
  const M = 40;
  t0 = process.hrtime.bigint();
  for (let i = 0; i < M; i++) {
    const ex = exchange(p);
    await runner.request(pipeline, ex);
    const d = runner.response(pipeline, ex, { status: 200, headers: { 'content-type': 'text/event-stream' } }, sink());
    d.data(stream);
    d.end();
    await new Promise((r) => setImmediate(r));
  }
  return [perRequest, Number(process.hrtime.bigint() - t0) / M / events / 1000];
}

/** The best of five runs after a warm-up (the machine is shared: the minimum is the least disturbed). */
async function measure(name: string, filters: unknown[]): Promise<void> {
  const p = policyOf(filters);
  const pipeline: Pipeline = buildPipeline(p, { registry, log, now: Date.now });
  await once(p, pipeline);
  let best: [number, number] = [Infinity, Infinity];
  for (let i = 0; i < 5; i++) {
    const r = await once(p, pipeline);
    best = [Math.min(best[0], r[0]), Math.min(best[1], r[1])];
  }
  console.log(`| ${name} | ${best[0].toFixed(1)} µs | ${best[1].toFixed(2)} µs |`);
}

console.log(`request body ${body.length} bytes, 10 messages; stream of ${events} SSE events`);
console.log('| filters | per request (request phases, body re-serialised) | per stream event (incl. runner framing) |');
console.log('|---|---|---|');
await measure('none', []);
await measure('pii redact + restore', [{ type: 'pii', action: 'redact', restore: true }]);
await measure('pii block (secret)', [{ type: 'pii', action: 'block', detect: ['secret'] }]);
await measure('regex block', [{ type: 'regex', pattern: '(?i)ignore (all )?previous instructions', action: 'block' }]);
await measure('pii redact + restore, phase both', [{ type: 'pii', action: 'redact', restore: true, phase: 'both' }]);
await measure('regex redact, phase both (stream window 256)', [{ type: 'regex', pattern: 'Project [A-Z][a-z]+', action: 'redact', phase: 'both' }]);
await measure('prompt-injection', [{ type: 'prompt-injection', action: 'block' }]);
await measure('pii + regex + prompt-injection', [{ type: 'pii', action: 'redact', restore: true }, { type: 'regex', pattern: '(?i)ignore (all )?previous instructions', action: 'block' }, { type: 'prompt-injection', action: 'block' }]);
