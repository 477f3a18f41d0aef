import type { PiiFilter } from '../../../shared/policy/filters.js';
import type { TextSegment } from '../../../shared/providers/content.js';
import { CONTINUE } from '../deny.js';
import type { Deny, Exchange, Processor, Verdict } from '../types.js';
import { FilterTools, inRequest, inResponse, type FilterEnv } from './common.js';
import { detect, holdFrom, labelOf } from './pii-detectors.js';
import { loggedTexts, writeLoggedText } from './log-text.js';
import { RedactionMap, RestoreRewriter, restoresInto } from './redaction-map.js';
import { countKinds, replaceMatches, ScanRewriter, type Match } from './scan-rewriter.js';
import { chainRewriters, type TextRewriter } from './stream-text.js';

// `type: pii`: finds emails, phone numbers, cards, IBANs, US SSNs, IP addresses and secrets in the texts the
// provider reads (request phase) and the app reads (response phase), and blocks, logs or redacts them. Redaction
// writes typed placeholders and keeps the map in the exchange's slot; with `restore: true` the placeholders that
// come back in the response (JSON, or split across stream events) are replaced by the values before the app
// reads them. Audit mode changes nothing: a redaction is recorded as would-redact. `logText` puts the request's
// texts, redacted by this filter whatever its action or mode, into the log line (log-text.ts).

/**
 * On a stream, response-phase PII scanning holds back, per channel, only the text a find may still be growing
 * in (holdFrom: the last word of prose; a number, address or short token until it ends, at most 256
 * characters; a long secret such as a PEM block until it is complete, at most PEM_MAX).
 */

interface State {
  /** The request's placeholders: the only ones restore puts values back for. */
  readonly map: RedactionMap;
  /** Placeholders for PII the response brought: never restored, never one of the request's. */
  readonly responseMap: RedactionMap;
  restore?: RestoreRewriter;
  readonly responseFound: Record<string, number>;
}

/** A value found inside JSON source (tool arguments sent as text) is kept unescaped in the map. */
function unescapeJson(v: string): string {
  try {
    const s: unknown = JSON.parse(`"${v}"`);
    return typeof s === 'string' ? s : v;
  } catch {
    return v;
  }
}

export function piiFilter(f: PiiFilter, env: FilterEnv): Processor {
  const tools = new FilterTools(f, env);
  const kinds = new Set(f.detect);
  const audit = env.ctx.audit;
  const redacts = f.action === 'redact' && !audit;
  const key = {};
  const state = (ex: Exchange): State =>
    ex.slot(key, () => {
      const map = new RedactionMap();
      return { map, responseMap: new RedactionMap(map), responseFound: {} };
    });

  const redactText = (map: RedactionMap, text: string, matches: readonly Match[], json: boolean): string =>
    replaceMatches(text, matches, (m, v) => map.placeholder(labelOf(m.kind), json ? unescapeJson(v) : v), json);

  const request = (ex: Exchange): Verdict => {
    const t = tools.requestTexts(ex);
    if (t === 'empty') return CONTINUE;
    if ('action' in t) return t;
    const found: Record<string, number> = {};
    const edits = new Map<TextSegment, string>();
    const st = state(ex);
    st.map.setAvoid(t.segments.map((s) => s.text));
    for (const seg of t.segments) {
      const ms = detect(seg.text, kinds);
      if (ms.length === 0) continue;
      for (const [k, n] of Object.entries(countKinds(ms))) found[k] = (found[k] ?? 0) + n;
      if (redacts) edits.set(seg, redactText(st.map, seg.text, ms, seg.json === true));
    }
    if (Object.keys(found).length === 0) return CONTINUE;
    if (f.action === 'block') return tools.blocked(ex, 'request', found)!;
    tools.record(ex, 'request', f.action === 'redact' ? tools.actionName('redact') : 'log', found);
    return tools.writeRequest(ex, edits);
  };

  const responseScan = (ex: Exchange): TextRewriter => {
    const st = state(ex);
    return new ScanRewriter(
      (text) => detect(text, kinds),
      (text, matches, json): string | Deny => {
        if (matches.length === 0) return text;
        const found = countKinds(matches);
        if (f.action === 'block') return tools.blocked(ex, 'response', found) ?? text;
        for (const [k, n] of Object.entries(found)) st.responseFound[k] = (st.responseFound[k] ?? 0) + n;
        return redacts ? redactText(st.responseMap, text, matches, json) : text;
      },
      0,
      (text) => holdFrom(text, kinds),
    );
  };

  const self: Processor = {
    ...tools.props,
    ...(inRequest(f) && { onRequest: (ex: Exchange) => tools.time('request', () => request(ex)) }),
    onResponse(ex, head, framing) {
      const st = state(ex);
      const restore = f.restore && st.map.size > 0;
      const scan = inResponse(f);
      if (!restore && !scan) return undefined;
      if (restore) restoresInto(ex, st.map);
      return tools.responseHooks(
        ex,
        head,
        framing,
        () => {
          // scan first (the provider's own text), then put the app's values back: the scan's placeholders come
          // from responseMap, which restore does not know, so what the response brought stays redacted
          const rs = restore ? (st.restore = new RestoreRewriter(st.map)) : undefined;
          const sc = scan ? responseScan(ex) : undefined;
          return sc && rs ? chainRewriters(sc, rs) : (sc ?? rs)!;
        },
        scan,
      );
    },
    onEnd(ex) {
      const st = state(ex);
      if (f.logText) {
        const segs = loggedTexts(ex);
        for (const seg of segs) seg.text = redactText(st.map, seg.text, detect(seg.text, kinds), seg.json);
        writeLoggedText(ex, segs);
      }
      if (st.restore && st.restore.restored > 0) tools.record(ex, 'response', 'restore', { placeholders: st.restore.restored });
      if (Object.keys(st.responseFound).length > 0) {
        tools.record(ex, 'response', f.action === 'redact' ? tools.actionName('redact') : 'log', st.responseFound);
      }
    },
  };
  return self;
}
