// The fake provider every path of the benchmark talks to: HTTPS with its own test root (bench/pki.js), keep-alive,
// OpenAI's chat-completions shape. Run as a child process (`node bench/upstream.js DIR PORT`) so its CPU is its own.
//
// What it answers is chosen by the request body, because that is what every peer forwards unchanged:
//   "stream": true          → a 200-event SSE stream: 1 event at once, a 100 ms pause (so buffering shows up as
//                             delay to the first event), then 199 events each written on its own turn of the loop
//   "user": "size=N"        → a JSON answer of about N bytes (default 1 KiB)

import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Buffer } from 'node:buffer';
import { setImmediate as tick, setTimeout as sleep } from 'node:timers/promises';

export const SSE_EVENTS = 200;
export const SSE_PAUSE_MS = 100;
const DEFAULT_SIZE = 1024;

function jsonAnswer(size) {
  const frame = {
    id: 'chatcmpl-bench',
    object: 'chat.completion',
    created: 1_700_000_000,
    model: 'gpt-4o-2024-08-06',
    choices: [{ index: 0, message: { role: 'assistant', content: '' }, finish_reason: 'stop' }],
    usage: { prompt_tokens: 20, completion_tokens: 80, total_tokens: 100 },
  };
  const overhead = Buffer.byteLength(JSON.stringify(frame));
  frame.choices[0].message.content = 'x'.repeat(Math.max(0, size - overhead));
  return Buffer.from(JSON.stringify(frame));
}

function sseEvent(i, usage) {
  const chunk = usage
    ? { id: 'chatcmpl-bench', object: 'chat.completion.chunk', model: 'gpt-4o-2024-08-06', choices: [], usage: { prompt_tokens: 20, completion_tokens: SSE_EVENTS, total_tokens: 20 + SSE_EVENTS } }
    : { id: 'chatcmpl-bench', object: 'chat.completion.chunk', model: 'gpt-4o-2024-08-06', choices: [{ index: 0, delta: { content: `tok${i} ` }, finish_reason: null }] };
  return `data: ${JSON.stringify(chunk)}\n\n`;
}

async function stream(res, includeUsage) {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  res.write(sseEvent(0, false));
  await sleep(SSE_PAUSE_MS);
  for (let i = 1; i < SSE_EVENTS; i++) {
    if (res.destroyed) return;
    res.write(sseEvent(i, false));
    await tick();
  }
  if (includeUsage) res.write(sseEvent(0, true));
  res.end('data: [DONE]\n\n');
}

export function startUpstream(dir, port) {
  const answers = new Map();
  const server = createServer(
    { cert: readFileSync(join(dir, 'upstream.crt')), key: readFileSync(join(dir, 'upstream.key')), keepAliveTimeout: 120_000, requestTimeout: 0 },
    (req, res) => {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        let body = {};
        try {
          body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          // not JSON: answer the default
        }
        if (body.stream === true) {
          void stream(res, body.stream_options?.include_usage === true);
          return;
        }
        const size = /^size=(\d+)$/.exec(String(body.user ?? ''))?.[1];
        const n = size ? Number(size) : DEFAULT_SIZE;
        let answer = answers.get(n);
        if (!answer) answers.set(n, (answer = jsonAnswer(n)));
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': answer.length });
        res.end(answer);
      });
    },
  );
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 130_000;
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve(server)));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [dir, port] = process.argv.slice(2);
  const server = await startUpstream(dir, Number(port));
  process.stdout.write(`listening ${server.address().port}\n`);
  process.on('SIGTERM', () => process.exit(0));
}
