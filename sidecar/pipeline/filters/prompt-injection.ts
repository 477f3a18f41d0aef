import type { PromptInjectionFilter } from '../../../shared/policy/filters.js';
import { CONTINUE } from '../deny.js';
import type { Exchange, Processor, Verdict } from '../types.js';
import { FilterTools, type FilterEnv } from './common.js';
import { INJECTION_RULES, matchRules, score } from './prompt-injection-rules.js';

// `type: prompt-injection`: scores the texts the provider reads from users and tools (not the app's own system
// or developer prompts, nor earlier assistant turns) against the shipped rule set. The request's score is its
// highest-scoring text; at or above `threshold` the request is blocked (403) or logged. The log line names the
// rules that matched, never the text.

export function promptInjectionFilter(f: PromptInjectionFilter, env: FilterEnv): Processor {
  const tools = new FilterTools(f, env);
  const disabled = new Set(f.disable);
  const rules = INJECTION_RULES.filter((r) => !disabled.has(r.name));

  const request = (ex: Exchange): Verdict => {
    const t = tools.requestTexts(ex);
    if (t === 'empty') return CONTINUE;
    if ('action' in t) return t;
    let top = 0;
    const found: Record<string, number> = {};
    for (const seg of t.segments) {
      if (seg.role === 'system' || seg.role === 'developer' || seg.role === 'assistant') continue;
      const hits = matchRules(seg.text, seg.role === 'tool' || seg.kind === 'tool_result', rules);
      if (hits.length === 0) continue;
      const s = score(hits);
      if (s < f.threshold) continue;
      top = Math.max(top, s);
      for (const h of hits) found[h.rule] = (found[h.rule] ?? 0) + 1;
    }
    if (top === 0) return CONTINUE;
    if (f.action === 'block') return tools.blocked(ex, 'request', found, `score ${top.toFixed(2)}`)!;
    tools.record(ex, 'request', 'log', found, `score ${top.toFixed(2)}`);
    return CONTINUE;
  };

  return { ...tools.props, onRequest: (ex) => tools.time('request', () => request(ex)) };
}
