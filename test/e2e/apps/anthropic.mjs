// An ordinary Anthropic SDK client: default base URL, API key from ANTHROPIC_API_KEY, trust from the
// environment. Nothing here knows about aigress.
//
// Usage: node anthropic.mjs create|stream MODEL PROMPT   → prints {"id","model","content","usage"} as JSON
import Anthropic from '@anthropic-ai/sdk';

const [mode, model, prompt] = process.argv.slice(2);
const client = new Anthropic();
const params = { model, max_tokens: 256, messages: [{ role: 'user', content: prompt }] };

let message;
if (mode === 'create') {
  message = await client.messages.create(params);
} else if (mode === 'stream') {
  message = await client.messages.stream(params).finalMessage();
} else {
  console.error(`usage: anthropic.mjs create|stream MODEL PROMPT (got mode ${mode})`);
  process.exit(2);
}
const content = message.content.map((b) => (b.type === 'text' ? b.text : '')).join('');
console.log(JSON.stringify({ id: message.id, model: message.model, content, usage: message.usage }));
