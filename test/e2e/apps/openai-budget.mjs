// An ordinary OpenAI SDK client making one chat call with max_tokens, with the SDK's retries set from argv (the
// SDK's default is 2). Nothing here knows about aigress.
//
// Usage: node openai-budget.mjs MODEL MAX_TOKENS MAX_RETRIES PROMPT
//   success → {"content","usage","ms"}; an API error → exit 1, stderr one JSON line
//   {"status","type","retryAfter","retryAfterMs","limit","remaining","reset","ms"}.
import OpenAI from 'openai';

const [model, maxTokens, maxRetries, prompt] = process.argv.slice(2);
const client = new OpenAI({ maxRetries: Number(maxRetries) });
const t0 = Date.now();
try {
  const r = await client.chat.completions.create({ model, max_tokens: Number(maxTokens), messages: [{ role: 'user', content: prompt }] });
  console.log(JSON.stringify({ content: r.choices[0]?.message.content, usage: r.usage, ms: Date.now() - t0 }));
} catch (err) {
  if (!(err instanceof OpenAI.APIError)) throw err;
  const h = (name) => err.headers?.get(name) ?? null;
  console.error(JSON.stringify({
    status: err.status, type: err.type, retryAfter: h('retry-after'), retryAfterMs: h('retry-after-ms'),
    limit: h('x-ratelimit-limit-tokens'), remaining: h('x-ratelimit-remaining-tokens'), reset: h('x-ratelimit-reset-tokens'), ms: Date.now() - t0,
  }));
  process.exit(1);
}
