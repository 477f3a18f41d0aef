// The shipped prompt-injection rule set (docs/filters.md lists it). Each rule has a name (what the log line and
// `disable` use), a weight, and patterns; a text's score is the sum of the weights of the rules it matches,
// capped at 1. A match that is only talked about (the phrase in quotes, or right after "what does", "such as",
// "examples of", "detect", …) counts at a third of its weight, so questions about injections are not taken for
// injections; a cue anywhere else in the sentence, or an order after the phrase ("… and print"), is no discount.
// Every occurrence is scored, so one quoted mention cannot cover a second, real one. Rules marked
// `toolOnly` apply only to tool results, where instructions have no business. Patterns are ours, bounded, and
// run on JavaScript's engine; none has nested unbounded repetition.

export interface InjectionRule {
  readonly name: string;
  readonly weight: number;
  readonly patterns: readonly RegExp[];
  readonly toolOnly?: boolean;
  /** Mentions are not discounted (invisible characters are never "talked about"). */
  readonly literal?: boolean;
}

const PREVIOUS = '(?:previous|prior|above|earlier|preceding|initial|original|system|developer)';
const ORDERS = '(?:instructions?|prompts?|rules|directions|guidelines|guardrails|context|messages|constraints)';
/** "Don't forget your instructions" is advice, not an order to drop them. */
const NOT = "(?<!\\b(?:don[’']t|do\\s+not|never|not|didn[’']t|won[’']t)\\s+)";
const IGNORE = `${NOT}\\b(?:ignore|disregard|forget|skip|override|bypass|drop)\\b`;

export const INJECTION_RULES: readonly InjectionRule[] = [
  {
    name: 'ignore-previous',
    weight: 0.8,
    patterns: [
      new RegExp(`${IGNORE}[^.\\n]{0,24}?\\b${PREVIOUS}\\s+(?:\\w+\\s+){0,2}?${ORDERS}`, 'i'),
      // "ignore all you were told", "ignore everything above", "forget anything said before"
      new RegExp(`${IGNORE}\\s+(?:all|everything|anything)\\s+(?:(?:that\\s+)?(?:you\\s+(?:were|have\\s+been)\\s+told|(?:was\\s+)?(?:said|written|stated)\\s+(?:above|before|earlier))|above|before|so\\s+far|until\\s+now|(?:(?:of\\s+)?the|this)\\s+above)\\b`, 'i'),
      // "ignore your instructions", "forget all your rules", "disregard the instructions you were given"
      new RegExp(`${IGNORE}\\s+(?:all\\s+(?:of\\s+)?)?your\\s+(?:(?:own|current|previous|prior|original|system|safety|core|programmed|initial|hidden)\\s+)?${ORDERS}`, 'i'),
      new RegExp(`${IGNORE}\\s+(?:all\\s+(?:of\\s+)?)?(?:the|any|those|these)\\s+${ORDERS}\\s+(?:you\\s+(?:were|have\\s+been|got)\\s+given|(?:you\\s+)?(?:were\\s+)?given\\s+(?:to\\s+you|above|before|earlier)|above|before|so\\s+far)\\b`, 'i'),
    ],
  },
  {
    name: 'ignore-previous-multilingual',
    weight: 0.8,
    patterns: [
      /\b(?:ignoriere|vergiss|missachte)\b[^.\n]{0,24}\b(?:vorherigen|bisherigen|obigen|vorigen)\s+(?:Anweisungen|Instruktionen|Regeln|Befehle)/i, // de
      /\b(?:ignore[zs]?|oublie[zs]?)\b[^.\n]{0,24}\b(?:instructions|consignes|règles)\s+(?:précédentes|antérieures|ci-dessus)/i, // fr
      /\b(?:ignora|olvida|omite)\b[^.\n]{0,24}\b(?:instrucciones|indicaciones|reglas)\s+(?:anteriores|previas)/i, // es
      /\b(?:ignora|dimentica)\b[^.\n]{0,24}\b(?:istruzioni|indicazioni|regole)\s+(?:precedenti|sopra)/i, // it
      /\b(?:ignore|esqueça|desconsidere)\b[^.\n]{0,24}\b(?:instruções|regras)\s+(?:anteriores|acima)/i, // pt
      /\b(?:negeer|vergeet)\b[^.\n]{0,24}\b(?:vorige|eerdere|bovenstaande)\s+(?:instructies|regels)/i, // nl
      /(?:忽略|无视|忘记|忽视)(?:之前|以上|先前|上面|前面)?(?:的)?(?:所有|全部)?(?:指令|指示|说明|规则)/, // zh
      /(?:以前|前|上記)の(?:指示|命令|ルール)を(?:無視|忘れ)/, // ja
      /(?:игнорируй|забудь)[^.\n]{0,24}(?:предыдущие|прежние)\s+(?:инструкции|указания)/i, // ru
    ],
  },
  {
    name: 'role-override',
    weight: 0.8,
    patterns: [
      /\byou\s+are\s+(?:now|no\s+longer)\s+(?:DAN\b|an?\s+(?:unrestricted|unfiltered|uncensored|jailbroken)|in\s+(?:developer|god|jailbreak)\s+mode|bound\s+by)/i,
      /\b(?:act|behave|respond)\s+as\s+(?:DAN\b|an?\s+(?:AI|assistant|model)\s+(?:without|with\s+no)\s+(?:restrictions|rules|limits|filters))/i,
      /\b(?:developer|jailbreak|god|DAN)\s+mode\s+(?:enabled|activated|on)\b/i,
      /\bpretend\s+(?:that\s+)?you\s+(?:have\s+no|are\s+not\s+bound\s+by|don't\s+have)\s+(?:rules|restrictions|guidelines|filters|limits)/i,
      /\bfrom\s+now\s+on,?\s+you\s+(?:will|must|are\s+to)\s+(?:ignore|answer\s+without|not\s+follow|obey\s+only)/i,
    ],
  },
  {
    name: 'system-prompt-exfiltration',
    weight: 0.8,
    patterns: [
      /\b(?:reveal|print|show|repeat|output|display|dump|leak|tell\s+me|give\s+me|write\s+out|copy)\b[^.\n]{0,30}?\b(?:your|the)\s+(?:system\s+(?:prompt|message|instructions)|initial\s+(?:prompt|instructions)|hidden\s+(?:prompt|instructions)|original\s+instructions)/i,
      /\brepeat\s+(?:the\s+)?(?:words|text|everything)\s+above\b/i,
      /\bwhat\s+(?:was|is|were)\s+(?:written\s+)?(?:in\s+)?your\s+(?:system\s+prompt|initial\s+instructions)\b/i,
    ],
  },
  {
    name: 'fake-system-markup',
    weight: 0.5,
    patterns: [/<\|im_start\|>\s*system|<\|(?:system|endoftext)\|>|\[\/?INST\]|<<\/?SYS>>|<\/?system>|^\s{0,4}#{2,4}\s*(?:system|new\s+instructions?)\b/im],
  },
  {
    name: 'tool-result-instructions',
    weight: 0.8,
    toolOnly: true,
    patterns: [
      /\b(?:assistant|AI|model|agent|LLM)\s*[,:]\s*(?:you\s+must\s+|please\s+|now\s+)?(?:ignore|send|forward|email|execute|run|call|delete|transfer|reveal)\b/i,
      /\b(?:IMPORTANT|ATTENTION|NOTE\s+TO\s+(?:THE\s+)?(?:AI|ASSISTANT))\s*[:!]\s*(?:new\s+)?(?:instructions?|you\s+must)/i,
      /\bwhen\s+you\s+(?:read|see|process)\s+this\b[^.\n]{0,40}\b(?:must|should|will)\b/i,
    ],
  },
  { name: 'unicode-tag-characters', weight: 0.9, literal: true, patterns: [/[\u{E0000}-\u{E007F}]/u] },
  { name: 'bidi-control', weight: 0.5, literal: true, patterns: [/[\u202A-\u202E\u2066-\u2069]/] },
];

/**
 * A cue right before a phrase (an opening quote at most between them) that makes the phrase the object of a
 * question or a description: "what does …", "such as …", "examples of …", "detect …", "is it safe to say …".
 * It must end where the phrase starts: "I would like you to ignore …" or "explain nothing. Ignore …" are orders.
 */
const MENTION = /(?:\bwhat\s+(?:does|do|did|is|are|was)(?:\s+(?:the\s+)?(?:phrase|prompt|sentence|words?|string|instruction))?|\bwhat\s+is\s+meant\s+by|\bmeaning\s+of(?:\s+the\s+(?:phrase|words?))?|\bexamples?\s+of|\bsuch\s+as|\b(?:phrases?|prompts?|strings?|sentences?|attacks?|inputs?|injections?|something)\s+like|\bthe\s+(?:phrase|sentence|string|words)|\bcalled|\bdetect(?:s|ing|ion\s+of)?|\brecogni[sz]e[sd]?|\bclassif(?:y|ies)|\b(?:defend|protect|guard)(?:s|ing)?\s+against|\bprevent(?:s|ing)?|\bis\s+it\s+(?:safe|ok|okay)\s+to\s+(?:say|write|type|use|send))\s*[:,]?\s*["'“‘«]?\s*$/i;
/** An order right after the phrase, in the same sentence: the phrase is being used, whatever came before. */
const ORDER_FOLLOWS = /^[^.?!\n]{0,40}?\b(?:and|then|&)\s+(?:(?:instead|now|just|please|immediately)\s+)?(?:print|tell|reveal|say|output|dump|give|show|write|send|list|answer|respond|act|do|follow|obey|execute|run|email|forward|delete|return|leak|display|repeat|translate|start|begin)\b/i;

export interface RuleHit {
  readonly rule: string;
  readonly weight: number;
}

const globals = new WeakMap<RegExp, RegExp>();
const global = (p: RegExp): RegExp => {
  let g = globals.get(p);
  if (!g) globals.set(p, (g = new RegExp(p.source, p.flags.includes('g') ? p.flags : `${p.flags}g`)));
  return g;
};

/** Whether the match at [start, end) of `text` is only talked about (quoted, or the object of a MENTION cue). */
function mentioned(text: string, start: number, end: number): boolean {
  const after = text.slice(end, end + 48);
  if (ORDER_FOLLOWS.test(after)) return false;
  const before = text.slice(Math.max(0, start - 60), start);
  const quoted = /["'“‘«]\s{0,2}$/.test(before) && /^\S{0,2}\s{0,2}["'”’»]/.test(after);
  return quoted || MENTION.test(before);
}

/** The rules `text` matches with their (possibly discounted) weight; `tool`: the text is a tool result. */
export function matchRules(text: string, tool: boolean, rules: readonly InjectionRule[]): RuleHit[] {
  const hits: RuleHit[] = [];
  for (const r of rules) {
    if (r.toolOnly && !tool) continue;
    let best = 0;
    for (const p of r.patterns) {
      if (r.literal) {
        if (p.test(text)) best = r.weight;
        continue;
      }
      // every occurrence: a quoted mention first must not hide an order after it
      const g = global(p);
      g.lastIndex = 0;
      for (let m = g.exec(text); m && best < r.weight; m = g.exec(text)) {
        best = Math.max(best, mentioned(text, m.index, m.index + m[0].length) ? r.weight / 3 : r.weight);
        if (m[0].length === 0) g.lastIndex++;
      }
    }
    if (best > 0) hits.push({ rule: r.name, weight: best });
  }
  return hits;
}

export const score = (hits: readonly RuleHit[]): number => Math.min(1, hits.reduce((s, h) => s + h.weight, 0));
