// An ordinary OpenAI SDK client, as an application team would write it: default base URL (or OPENAI_BASE_URL,
// which the SDK reads, e.g. OpenAI's EU endpoint), API key from OPENAI_API_KEY, trust from the environment.
// Nothing here knows about aigress.
//
// Usage: node openai-chat.mjs chat|stream|stream-plain MODEL PROMPT
//   chat, stream  → prints {"id","model","content","usage"} as JSON (stream asks for usage: stream_options)
//   stream-plain  → streams without stream_options and prints {"id","model","content","usage","chunks","received"},
//                   `received` being every chunk exactly as the SDK handed it over
//   An error the API answered (a status) → exit 1, stderr {"error","status","message"} as one JSON line.
import OpenAI from 'openai';

const [mode, model, prompt] = process.argv.slice(2);
const client = new OpenAI();
const messages = [{ role: 'user', content: prompt }];

async function stream(options) {
  const s = await client.chat.completions.create({ model, messages, stream: true, ...options });
  let content = '';
  let usage = null;
  let id = null;
  const received = [];
  for await (const chunk of s) {
    received.push(chunk);
    id = chunk.id;
    content += chunk.choices[0]?.delta?.content ?? '';
    if (chunk.usage) usage = chunk.usage;
  }
  return { id, model, content, usage, chunks: received.length, received };
}

try {
  if (mode === 'chat') {
    const r = await client.chat.completions.create({ model, messages });
    console.log(JSON.stringify({ id: r.id, model: r.model, content: r.choices[0]?.message.content, usage: r.usage }));
  } else if (mode === 'stream') {
    const out = await stream({ stream_options: { include_usage: true } });
    delete out.received;
    console.log(JSON.stringify(out));
  } else if (mode === 'stream-plain') {
    console.log(JSON.stringify(await stream({})));
  } else {
    console.error(`usage: openai-chat.mjs chat|stream|stream-plain MODEL PROMPT (got mode ${mode})`);
    process.exit(2);
  }
} catch (err) {
  // Connection failures (no status) stay uncaught: their stack names the cause, which is what a caller reads.
  if (!(err instanceof OpenAI.APIError) || err.status === undefined) throw err;
  console.error(JSON.stringify({ error: err.constructor.name, status: err.status, message: err.message }));
  process.exit(1);
}
