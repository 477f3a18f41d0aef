import type { Operation, ProviderAdapter, Usage, UsageReader, UsageResult } from '../../shared/providers/types.js';
import { costUsd } from '../../shared/providers/prices.js';
import { usageReader, type UsageHandlers } from '../../shared/providers/usage.js';
import type { PipelineContext } from './context.js';
import { CONTINUE } from './deny.js';
import type { Exchange, Framing, Processor, ResponseHead, ResponseHooks } from './types.js';

/** Operations whose successful responses carry token usage; the others are counted, not metered. */
const METERED: ReadonlySet<Operation> = new Set(['chat', 'responses', 'embeddings', 'text_completion', 'generate_content']);

/** gen_ai.operation.name: OpenTelemetry's well-known values; the Responses API is a chat operation there. */
const otelOperation = (op: Operation): string => (op === 'responses' ? 'chat' : op);

// Label sets are bounded (operations × providers × model labels) and identity is one object per proxy, so they
// are built once per tuple rather than spread on every response; prom-client also hashes the same frozen shapes
// faster. Shared and frozen: nothing may change them.
interface LabelSets {
  readonly genAi: Record<string, string>;
  readonly errors: Map<string, Record<string, string>>;
  readonly tokenUsage: { readonly input: Record<string, string>; readonly output: Record<string, string> };
  readonly tokens: Readonly<Record<string, Record<string, string>>>;
  readonly cost: Record<string, string>;
}
const labelCache = new WeakMap<Record<string, string>, Map<string, LabelSets>>();
function labelSets(operation: Operation, adapter: ProviderAdapter, model: string, identity: Record<string, string>): LabelSets {
  let byKey = labelCache.get(identity);
  if (!byKey) labelCache.set(identity, (byKey = new Map()));
  const key = `${operation}\u0000${adapter.id}\u0000${model}`;
  let sets = byKey.get(key);
  if (!sets) {
    const provider = adapter.id;
    const genAi = Object.freeze({ gen_ai_operation_name: otelOperation(operation), gen_ai_provider_name: adapter.otelName, gen_ai_request_model: model, ...identity });
    const tokens: Record<string, Record<string, string>> = {};
    for (const [, type] of TYPES) tokens[type] = Object.freeze({ provider, model, type, ...identity });
    sets = {
      genAi,
      errors: new Map(),
      tokenUsage: {
        input: Object.freeze({ ...genAi, gen_ai_token_type: 'input' }),
        output: Object.freeze({ ...genAi, gen_ai_token_type: 'output' }),
      },
      tokens,
      cost: Object.freeze({ provider, model, ...identity }),
    };
    if (byKey.size >= 10_000) byKey.clear();
    byKey.set(key, sets);
  }
  return sets;
}

function errorLabels(sets: LabelSets, errorType: string): Record<string, string> {
  let labels = sets.errors.get(errorType);
  if (!labels) {
    labels = Object.freeze({ ...sets.genAi, error_type: errorType });
    sets.errors.set(errorType, labels);
  }
  return labels;
}

const seconds = (since: bigint): number => Number(process.hrtime.bigint() - since) / 1e9;

/** Per exchange: what metering learned from the response, for `onEnd`. */
interface Reading {
  ok: boolean;
  status: number;
  reader?: UsageReader;
  handlers?: UsageHandlers;
  failed: boolean;
  sets: LabelSets;
  identity: Record<string, string>;
}

/**
 * Reads token usage from each response as it streams by (never changing a byte) and records tokens, estimated
 * cost, the OpenTelemetry GenAI histograms and time to first chunk; responses whose usage cannot be read are
 * counted in aigress_usage_missing_total. Metering never breaks a response: a reader failure counts as unreadable.
 *
 * Usage must be read from the bytes the provider sends, and a compressed stream cannot be read (or rewritten)
 * event by event without inflating it on the hot path. So metered requests ask upstream for an unencoded
 * response; the app, which may have offered gzip, gets identity, which HTTP allows. The cost is some bandwidth
 * on the provider hop for JSON bodies (SSE streams are rarely compressed anyway).
 *
 * On streams the runner frames the events once and metering observes them; other bodies it reads as bytes.
 * Usage lands in `ex.results` before the budget step (which runs earlier, so ends later) settles.
 */
export function meteringProcessor(ctx: PipelineContext): Processor {
  const m = ctx.metrics;
  const self: Processor = {
    name: 'metering',
    type: 'metering',
    phase: 'transform',
    onRequest(ex) {
      const enc = ex.request.headers.get('accept-encoding');
      if (METERED.has(ex.described.operation) && enc !== undefined && enc !== 'identity') ex.request.headers.set('accept-encoding', 'identity');
      return CONTINUE;
    },
    onResponse(ex: Exchange, head: ResponseHead, framing: Framing): ResponseHooks | undefined {
      const d = ex.described;
      const { adapter } = ex;
      const ok = head.status >= 200 && head.status < 300;
      const identity = ctx.identityLabels(ex.identity);
      const model = String(ex.facts.modelLabel ?? 'unknown');
      const r: Reading = { ok, status: head.status, failed: false, sets: labelSets(d.operation, adapter, model, identity), identity };
      ex.slot(self, () => r);
      const metered = ok && METERED.has(d.operation);
      try {
        if (metered) {
          if (framing === 'sse' || framing === 'eventstream') r.handlers = adapter.usageHandlers(d, head);
          else r.reader = usageReader(adapter, d, head);
        }
      } catch {
        r.failed = true;
      }
      let first = true;
      const firstChunk = (): void => {
        if (!first) return;
        first = false;
        if (ok && d.stream) m.timeToFirstChunk.observe(r.sets.genAi, seconds(ex.startedAt));
      };
      const h = r.handlers;
      return {
        bytes(chunk) {
          if (chunk.length > 0) firstChunk();
          if (!r.reader || r.failed) return;
          try {
            r.reader.push(chunk);
          } catch {
            r.failed = true;
          }
        },
        ...(h && {
          observe(ev) {
            if (r.failed) return;
            try {
              if (ev.sse) h.sse?.(ev.sse);
              else if (ev.message) h.eventStream?.(ev.message);
            } catch {
              r.failed = true;
            }
          },
        }),
      };
    },
    onEnd(ex, end) {
      const r = ex.slot<Reading | undefined>(self, () => undefined);
      if (!r) return; // no response reached metering (denied, failed, client gone)
      const d = ex.described;
      const errorType = !r.ok ? String(r.status) : end.complete ? undefined : 'incomplete';
      m.duration.observe(errorType ? errorLabels(r.sets, errorType) : r.sets.genAi, seconds(ex.startedAt));
      if (!r.ok || !METERED.has(d.operation)) return;
      let result: UsageResult = { unreadable: true };
      if (!r.failed && !end.framingFailed) {
        try {
          result = r.reader ? r.reader.finish() : r.handlers ? r.handlers.result() : { unreadable: true };
        } catch {
          result = { unreadable: true };
        }
      }
      record(ctx, ex, d.operation, String(ex.facts.modelLabel ?? 'unknown'), result, end.complete, r.identity, r.sets);
    },
  };
  return self;
}

const TYPES: readonly [keyof Usage, string][] = [
  ['input', 'input'],
  ['output', 'output'],
  ['cachedInput', 'cached_input'],
  ['reasoning', 'reasoning'],
];

function record(
  ctx: PipelineContext,
  ex: Exchange,
  operation: Operation,
  model: string,
  result: UsageResult,
  complete: boolean,
  identity: Record<string, string>,
  sets: LabelSets,
): void {
  const m = ctx.metrics;
  const provider = ex.adapter.id;
  const u = result.usage;
  if (!u || (u.input === undefined && u.output === undefined)) {
    const reason = result.unreadable ? 'unreadable' : complete ? 'not_reported' : 'incomplete';
    m.usageMissing.inc({ provider, operation, model, reason, ...identity });
    ex.facts.usageMissing = reason;
    ex.results.usageMissing = reason;
    return;
  }
  for (const [field, type] of TYPES) {
    const n = u[field];
    if (n === undefined) continue;
    m.tokens.inc(sets.tokens[type]!, n);
  }
  if (u.input !== undefined) m.tokenUsage.observe(sets.tokenUsage.input, u.input);
  if (u.output !== undefined) m.tokenUsage.observe(sets.tokenUsage.output, u.output);
  ex.results.usage = u;
  if (result.responseModel !== undefined) ex.results.responseModel = result.responseModel;
  const f = ex.facts;
  f.inputTokens = u.input;
  f.outputTokens = u.output;
  f.cachedInputTokens = u.cachedInput;
  f.cacheWriteInputTokens = u.cacheWriteInput;
  f.reasoningTokens = u.reasoning;
  if (result.responseModel !== undefined && result.responseModel !== ex.described.model) f.responseModel = result.responseModel.slice(0, 128);
  const d = ex.described;
  const names = [d.model, ...(d.modelAliases ?? []), result.responseModel].filter((n): n is string => n !== undefined);
  const price = names.length > 0 ? ctx.prices.lookup(provider, names) : undefined;
  const cost = price ? costUsd(u, price) : undefined;
  if (cost !== undefined) {
    m.cost.inc(sets.cost, cost);
    f.costUsd = Number(cost.toPrecision(6));
    ex.results.costUsd = cost;
  }
}
