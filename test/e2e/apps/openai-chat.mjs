// An ordinary OpenAI SDK client, as an application team would write it: default base URL, API key from
// OPENAI_API_KEY, trust from the environment. Nothing here knows about aigress.
//
// Usage: node openai-chat.mjs chat|stream MODEL PROMPT   → prints {"id","model","content","usage"} as JSON
import OpenAI from 'openai';

const [mode, model, prompt] = process.argv.slice(2);
const client = new OpenAI();
const messages = [{ role: 'user', content: prompt }];

if (mode === 'chat') {
  const r = await client.chat.completions.create({ model, messages });
  console.log(JSON.stringify({ id: r.id, model: r.model, content: r.choices[0]?.message.content, usage: r.usage }));
} else if (mode === 'stream') {
  const stream = await client.chat.completions.create({ model, messages, stream: true, stream_options: { include_usage: true } });
  let content = '';
  let usage = null;
  let id = null;
  let chunks = 0;
  for await (const chunk of stream) {
    chunks++;
    id = chunk.id;
    content += chunk.choices[0]?.delta?.content ?? '';
    if (chunk.usage) usage = chunk.usage;
  }
  console.log(JSON.stringify({ id, model, content, usage, chunks }));
} else {
  console.error(`usage: openai-chat.mjs chat|stream MODEL PROMPT (got mode ${mode})`);
  process.exit(2);
}
