import type { RE2JS } from 're2js';
import { compilePattern, type RegexFilter } from '../../../shared/policy/filters.js';
import type { TextSegment } from '../../../shared/providers/content.js';
import { CONTINUE } from '../deny.js';
import type { Deny, Exchange, Processor, Verdict } from '../types.js';
import { FilterTools, inRequest, inResponse, type FilterEnv } from './common.js';
import { replaceMatches, ScanRewriter, type Match } from './scan-rewriter.js';

// `type: regex`: a policy author's pattern over the texts the provider or the app reads; block, redact
// (`[REDACTED_1]`) or log. The pattern is untrusted input to the proxy, so it runs on re2js (RE2: linear time
// in the text, no backreferences or lookaround); `(a+)+$` on 10,000 `a`s and a `b` costs what any pattern
// costs. On a stream, the last `window` characters of each channel are held back so a match is seen whole.

/** Matches of `re` in `text`, at most `limit` (a pattern matching everywhere must not build a huge list). */
export function findAll(re: RE2JS, text: string, kind: string, limit = 10_000): Match[] {
  const out: Match[] = [];
  const m = re.matcher(text);
  while (out.length < limit && m.find()) {
    const start = m.start();
    const end = m.end();
    if (end > start) out.push({ start, end, kind });
  }
  return out;
}

export function regexFilter(f: RegexFilter, env: FilterEnv): Processor {
  const tools = new FilterTools(f, env);
  const re = compilePattern(f.pattern);
  const audit = env.ctx.audit;
  const scan = (text: string): Match[] => findAll(re, text, 'match');
  const key = {};
  const counter = (ex: Exchange): { n: number; found: number } => ex.slot(key, () => ({ n: 0, found: 0 }));
  const redact = (ex: Exchange, text: string, ms: readonly Match[], json: boolean): string => {
    const c = counter(ex);
    return replaceMatches(text, ms, () => `[REDACTED_${++c.n}]`, json);
  };

  const request = (ex: Exchange): Verdict => {
    const t = tools.requestTexts(ex);
    if (t === 'empty') return CONTINUE;
    if ('action' in t) return t;
    let found = 0;
    const edits = new Map<TextSegment, string>();
    for (const seg of t.segments) {
      const ms = scan(seg.text);
      if (ms.length === 0) continue;
      found += ms.length;
      if (f.action === 'redact' && !audit) edits.set(seg, redact(ex, seg.text, ms, seg.json === true));
    }
    if (found === 0) return CONTINUE;
    const kinds = { match: found };
    if (f.action === 'block') return tools.blocked(ex, 'request', kinds)!;
    tools.record(ex, 'request', f.action === 'redact' ? tools.actionName('redact') : 'log', kinds);
    return tools.writeRequest(ex, edits);
  };

  return {
    ...tools.props,
    ...(inRequest(f) && { onRequest: (ex: Exchange) => tools.time('request', () => request(ex)) }),
    ...(inResponse(f) && {
      onResponse(ex, head, framing) {
        return tools.responseHooks(
          ex,
          head,
          framing,
          () =>
            new ScanRewriter(scan, (text, ms, json): string | Deny => {
              if (ms.length === 0) return text;
              if (f.action === 'block') return tools.blocked(ex, 'response', { match: ms.length }) ?? text;
              counter(ex).found += ms.length;
              return f.action === 'redact' && !audit ? redact(ex, text, ms, json) : text;
            }, f.window),
          true,
        );
      },
      onEnd(ex) {
        const c = counter(ex);
        if (c.found > 0) tools.record(ex, 'response', f.action === 'redact' ? tools.actionName('redact') : 'log', { match: c.found });
      },
    }),
  };
}
