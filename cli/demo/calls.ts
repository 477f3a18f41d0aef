import type { FakeAnswer, RequestRecord } from './fake-provider.js';
import { isObj } from '../../shared/json.js';
import { DEMO_MANAGED_ANTHROPIC_KEY, DEMO_PLACEHOLDER_KEY } from './sample.js';

// The calls the demo makes as the app, each with the outcome the demo policy must produce, and the pure check of
// what was observed against it. Observations come from three independent places: what the app got back, what
// reached the fake provider (and what it reported as usage), and how the proxy's /metrics moved.

export const OPENAI_HOST = 'api.openai.com';
export const ANTHROPIC_HOST = 'api.anthropic.com';
export const GEMINI_HOST = 'generativelanguage.googleapis.com';
/** A host no provider adapter claims: its traffic passes the proxy untouched. */
export const PLAIN_HOST = 'example.org';

export type Decision = 'allow' | 'deny' | 'passthrough' | 'error' | 'none';

export interface Tokens {
  input: number;
  output: number;
}

export interface DemoCall {
  id: string;
  title: string;
  host: string;
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string;
  /** The model asked for, if any; the metrics label to read tokens under. */
  model?: string;
  provider?: string;
  /** The prompt, to recognise the echoed reply. */
  prompt?: string;
  /** Trust for this call: the pod's bundle (AI hosts), or the public roots (a site the proxy must not touch). */
  trust: 'bundle' | 'public-roots';
  expect: {
    status: number;
    decision: Decision;
    /** The x-aigress-denied kind of a denial. */
    deniedBy?: 'policy' | 'region' | 'budget';
    /** Whether the call must reach the fake provider. */
    upstream: boolean;
  };
  /** What the app must see in the answer beyond status and decision; undefined when it is right. */
  checkAnswer?: (answer: ObservedAnswer, upstream: readonly RequestRecord[]) => string | undefined;
  /** A short phrase for the summary: what this call shows. */
  shows: string;
}

export interface ObservedAnswer {
  status: number;
  body: string;
  deniedBy?: string;
  /** The Retry-After header of the answer, when it has one. */
  retryAfter?: string;
  /** Common names of the certificate the app was shown and its issuer. */
  peer: { subject: string; issuer: string };
}

export interface CallObservation {
  answer?: ObservedAnswer;
  /** The call failed before an HTTP answer (TLS, connection). */
  error?: string;
  /** Requests the fake provider received during the call. */
  upstream: RequestRecord[];
  /** What the fake provider answered and the usage it reported. */
  reported?: FakeAnswer;
  /** Growth of aigress_tokens_total for the call's provider and model. */
  metered: Tokens;
  /** The decision label of the aigress_requests_total series that grew; `passthrough` if a pass-through connection was counted instead. */
  decision: Decision;
}

export interface CallOutcome {
  id: string;
  title: string;
  host: string;
  model?: string;
  status: number | null;
  decision: Decision;
  deniedBy?: string;
  /** Usage the fake provider put in its answer (null when nothing reached it). */
  reportedTokens: Tokens | null;
  meteredTokens: Tokens;
  upstreamRequests: number;
  certificate: { subject: string; issuer: string } | null;
  /** The error message the app got, for a call the proxy answered itself. */
  denialMessage?: string;
  ok: boolean;
  failures: string[];
  shows: string;
}

const json = { 'content-type': 'application/json' };
const openAiAuth = { ...json, authorization: 'Bearer sk-demo-openai-key' };

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** The value at a path of keys (list positions as digits), or undefined. */
const field = (v: unknown, ...path: string[]): unknown =>
  path.reduce<unknown>((cur, k) => (Array.isArray(cur) ? (/^\d+$/.test(k) ? cur[Number(k)] : undefined) : isObj(cur) ? cur[k] : undefined), v);

/** The JSON payloads of an SSE body's `data:` lines (`[DONE]` left out). */
export function sseData(body: string): unknown[] {
  const out: unknown[] = [];
  for (const line of body.split('\n')) {
    if (!line.startsWith('data:')) continue;
    const data = line.slice(5).trim();
    if (data === '[DONE]') continue;
    out.push(parseJson(data));
  }
  return out;
}

function echoed(prompt: string, reply: unknown): string | undefined {
  return reply === `echo: ${prompt}` ? undefined : `the reply was ${JSON.stringify(reply)}, not the provider's echo of the prompt`;
}

export function demoCalls(): DemoCall[] {
  const chatPrompt = 'Summarise the release notes in one line';
  const streamPrompt = 'Stream a haiku about egress';
  const claudePrompt = 'Translate hello into French';
  const piiPrompt = 'Mail ada@example.com the invoice for card 4111 1111 1111 1111';
  return [
    {
      id: 'openai-chat',
      title: 'OpenAI chat',
      host: OPENAI_HOST,
      method: 'POST',
      path: '/v1/chat/completions',
      headers: openAiAuth,
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: chatPrompt }] }),
      model: 'gpt-4o-mini',
      provider: 'openai',
      prompt: chatPrompt,
      trust: 'bundle',
      expect: { status: 200, decision: 'allow', upstream: true },
      checkAnswer: (a) => echoed(chatPrompt, field(parseJson(a.body), 'choices', '0', 'message', 'content')),
      shows: 'allowed by models.allow gpt-4o*; tokens metered from the response body',
    },
    {
      id: 'openai-stream',
      title: 'OpenAI chat, streamed',
      host: OPENAI_HOST,
      method: 'POST',
      path: '/v1/chat/completions',
      headers: openAiAuth,
      // No stream_options.include_usage: OpenAI would send no usage at all; the proxy asks for it and strips it.
      body: JSON.stringify({ model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: streamPrompt }] }),
      model: 'gpt-4o',
      provider: 'openai',
      prompt: streamPrompt,
      trust: 'bundle',
      expect: { status: 200, decision: 'allow', upstream: true },
      checkAnswer: (a, upstream) => {
        const chunks = sseData(a.body);
        if (chunks.some((c) => field(c, 'usage') !== undefined && field(c, 'usage') !== null)) return 'the app received a usage chunk it did not ask for';
        const text = chunks.map((c) => field(c, 'choices', '0', 'delta', 'content')).filter((t) => typeof t === 'string').join('');
        const wrong = echoed(streamPrompt, text);
        if (wrong) return wrong;
        const sent = parseJson(upstream[0]?.body ?? '');
        if (field(sent, 'stream_options', 'include_usage') !== true) return 'the proxy did not ask the provider for usage (stream_options.include_usage)';
        return undefined;
      },
      shows: 'no include_usage from the app: the proxy asked upstream and stripped it; the app saw no usage chunk',
    },
    {
      id: 'pii-restore',
      title: 'OpenAI stream, PII redacted',
      host: OPENAI_HOST,
      method: 'POST',
      path: '/v1/chat/completions',
      headers: openAiAuth,
      body: JSON.stringify({ model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: piiPrompt }] }),
      model: 'gpt-4o',
      provider: 'openai',
      prompt: piiPrompt,
      trust: 'bundle',
      expect: { status: 200, decision: 'allow', upstream: true },
      checkAnswer: (a, upstream) => {
        const sent = String(field(parseJson(upstream[0]?.body ?? ''), 'messages', '0', 'content'));
        if (sent !== 'Mail [EMAIL_1] the invoice for card [CREDIT_CARD_1]') return `the provider received ${JSON.stringify(sent)}, not placeholders`;
        const text = sseData(a.body).map((c) => field(c, 'choices', '0', 'delta', 'content')).filter((t) => typeof t === 'string').join('');
        return echoed(piiPrompt, text);
      },
      shows: 'filter pii-redact: the provider saw [EMAIL_1] and [CREDIT_CARD_1]; the app read its own values back (restore: true)',
    },
    {
      id: 'anthropic',
      title: 'Anthropic messages',
      host: ANTHROPIC_HOST,
      method: 'POST',
      path: '/v1/messages',
      // The app holds no Anthropic key: it sends the placeholder, the proxy puts the managed key on the call.
      headers: { ...json, 'x-api-key': DEMO_PLACEHOLDER_KEY, 'anthropic-version': '2023-06-01' },
      body: JSON.stringify({ model: 'claude-haiku-4-5', max_tokens: 64, messages: [{ role: 'user', content: claudePrompt }] }),
      model: 'claude-haiku-4-5',
      provider: 'anthropic',
      prompt: claudePrompt,
      trust: 'bundle',
      expect: { status: 200, decision: 'allow', upstream: true },
      checkAnswer: (a, upstream) => {
        const got = upstream[0]?.headers['x-api-key'];
        if (got !== DEMO_MANAGED_ANTHROPIC_KEY) return `the provider received x-api-key ${got === DEMO_PLACEHOLDER_KEY ? 'the app\'s placeholder' : JSON.stringify(got)}, not the managed key`;
        return echoed(claudePrompt, field(parseJson(a.body), 'content', '0', 'text'));
      },
      shows: 'allowed by models.allow claude-*; the app sent a placeholder key, the provider got the managed one (spec.credentials)',
    },
    {
      id: 'budget-exhausted',
      title: 'Anthropic, past the budget',
      host: ANTHROPIC_HOST,
      method: 'POST',
      path: '/v1/messages',
      headers: { ...json, 'x-api-key': 'sk-ant-demo-key', 'anthropic-version': '2023-06-01' },
      // The call before spent some of the 1000 output tokens a minute claude-haiku-* may use; this one's
      // max_tokens needs all of them, so the budget cannot cover it until the window has moved on.
      body: JSON.stringify({ model: 'claude-haiku-4-5', max_tokens: 1000, messages: [{ role: 'user', content: 'Write the long version' }] }),
      model: 'claude-haiku-4-5',
      provider: 'anthropic',
      trust: 'bundle',
      expect: { status: 429, decision: 'deny', deniedBy: 'budget', upstream: false },
      checkAnswer: (a) => {
        const e = field(parseJson(a.body), 'error');
        if (!isObj(e) || e.type !== 'rate_limit_error' || typeof e.message !== 'string') return `the refusal is not in Anthropic's error shape: ${a.body.slice(0, 120)}`;
        const s = Number(a.retryAfter);
        return Number.isInteger(s) && s >= 1 && s <= 61 ? undefined : `Retry-After ${a.retryAfter ?? '(none)'}, expected 1 to 61 seconds`;
      },
      shows: 'budgets: 1000 output tokens/min for claude-haiku-*, partly spent; max_tokens 1000 → 429 with Retry-After, nothing sent',
    },
    {
      id: 'model-denied',
      title: 'OpenAI, denied model',
      host: OPENAI_HOST,
      method: 'POST',
      path: '/v1/chat/completions',
      headers: openAiAuth,
      body: JSON.stringify({ model: 'gpt-4o-realtime-preview', messages: [{ role: 'user', content: 'This one should not leave the pod' }] }),
      model: 'gpt-4o-realtime-preview',
      provider: 'openai',
      trust: 'bundle',
      expect: { status: 403, decision: 'deny', deniedBy: 'policy', upstream: false },
      checkAnswer: (a) => {
        const e = field(parseJson(a.body), 'error');
        if (!isObj(e) || typeof e.message !== 'string' || e.type !== 'permission_error') return `the denial is not in OpenAI's error shape: ${a.body.slice(0, 120)}`;
        return e.message.includes('gpt-4o-realtime-preview') ? undefined : `the denial does not name the model: ${e.message}`;
      },
      shows: 'models.deny gpt-4o-realtime* wins over allow gpt-4o*; 403 in OpenAI\'s error shape, nothing sent',
    },
    {
      id: 'region-denied',
      title: 'Gemini, global endpoint',
      host: GEMINI_HOST,
      method: 'POST',
      path: '/v1beta/models/gemini-2.5-flash:generateContent',
      headers: { ...json, 'x-goog-api-key': 'demo-google-key' },
      body: JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'Where will this be processed?' }] }] }),
      model: 'gemini-2.5-flash',
      provider: 'gemini',
      trust: 'bundle',
      expect: { status: 451, decision: 'deny', deniedBy: 'region', upstream: false },
      checkAnswer: (a) => {
        const e = field(parseJson(a.body), 'error');
        if (!isObj(e) || e.status !== 'PERMISSION_DENIED' || typeof e.message !== 'string') return `the denial is not in Google's error shape: ${a.body.slice(0, 120)}`;
        return undefined;
      },
      shows: 'the Gemini API may serve from any region; regions.allow [eu, us] → 451 in Google\'s error shape',
    },
    {
      id: 'passthrough',
      title: 'non-AI site',
      host: PLAIN_HOST,
      method: 'GET',
      path: '/',
      headers: {},
      trust: 'public-roots',
      expect: { status: 200, decision: 'passthrough', upstream: true },
      checkAnswer: (a) => (a.body === `fake ${PLAIN_HOST}: GET /\n` ? undefined : `unexpected body ${JSON.stringify(a.body.slice(0, 80))}`),
      shows: 'not an AI host: TCP passed through, the site\'s own certificate, not counted as an AI request',
    },
  ];
}

/** Compares what happened with what the call expects; every mismatch is one line. */
export function evaluateCall(call: DemoCall, o: CallObservation, trustedIssuer: { bundle: string; publicRoots: string }): CallOutcome {
  const failures: string[] = [];
  const a = o.answer;
  if (!a) failures.push(`no answer: ${o.error ?? 'unknown error'}`);
  else {
    if (a.status !== call.expect.status) failures.push(`status ${a.status}, expected ${call.expect.status}`);
    if (a.deniedBy !== call.expect.deniedBy) failures.push(`x-aigress-denied ${a.deniedBy ?? '(none)'}, expected ${call.expect.deniedBy ?? '(none)'}`);
    const issuer = call.trust === 'bundle' ? trustedIssuer.bundle : trustedIssuer.publicRoots;
    if (a.peer.issuer !== issuer) failures.push(`certificate issued by "${a.peer.issuer}", expected "${issuer}"`);
  }
  if (o.decision !== call.expect.decision) failures.push(`proxy decision ${o.decision}, expected ${call.expect.decision}`);
  const reached = o.upstream.length;
  if (call.expect.upstream && reached !== 1) failures.push(`${reached} requests reached the provider, expected 1`);
  if (!call.expect.upstream && reached !== 0) failures.push(`${reached} requests reached the provider, expected none`);
  const reported = o.reported ? { input: o.reported.usage.input, output: o.reported.usage.output } : null;
  if (reported) {
    if (reported.input + reported.output === 0) failures.push('the provider reported no tokens');
    if (reported.input !== o.metered.input || reported.output !== o.metered.output) {
      failures.push(`metered ${o.metered.input}+${o.metered.output} tokens, the provider reported ${reported.input}+${reported.output}`);
    }
  } else if (o.metered.input + o.metered.output > 0) {
    failures.push(`metered ${o.metered.input}+${o.metered.output} tokens for a call the provider never answered`);
  }
  if (a && failures.length === 0 && call.checkAnswer) {
    const wrong = call.checkAnswer(a, o.upstream);
    if (wrong) failures.push(wrong);
  }
  const outcome: CallOutcome = {
    id: call.id,
    title: call.title,
    host: call.host,
    status: a?.status ?? null,
    decision: o.decision,
    reportedTokens: reported,
    meteredTokens: o.metered,
    upstreamRequests: reached,
    certificate: a ? a.peer : null,
    ok: failures.length === 0,
    failures,
    shows: call.shows,
  };
  if (call.model !== undefined) outcome.model = call.model;
  if (a?.deniedBy !== undefined) {
    outcome.deniedBy = a.deniedBy;
    const message = field(parseJson(a.body), 'error', 'message');
    if (typeof message === 'string') outcome.denialMessage = message;
  }
  return outcome;
}
