// The outside world for the e2e suite: one process in the "outside" network namespace that plays
// api.openai.com, api.anthropic.com and a non-AI host, over HTTPS (certificates from a test root, chosen by
// SNI) and plain HTTP. Plain ESM with node: built-ins only, so it runs with a bare `node` in any namespace.
//
// Usage: node fake-provider-server.mjs CONFIG.json
//   { "httpsPort": 443, "httpPort": 80,
//     "certs": { "<host>": { "cert": "<pem file>", "key": "<pem file>" } }, "defaultHost": "<host>",
//     "openaiHosts": [...], "anthropicHosts": [...], "recordFile": "<jsonl file>" }
//
// Every connection and every request is appended to recordFile as one JSON line; the test reads them back.
// Answers are derived from the request (the reply echoes the last user message), so a test can tell its
// own answer from any other. A model name containing "slow" streams slowly, for drain tests.

import { Buffer } from 'node:buffer';
import { appendFileSync, readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import tls from 'node:tls';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const contexts = new Map(
  Object.entries(config.certs).map(([host, files]) => [
    host,
    tls.createSecureContext({ cert: readFileSync(files.cert), key: readFileSync(files.key) }),
  ]),
);
const openaiHosts = new Set(config.openaiHosts);
const anthropicHosts = new Set(config.anthropicHosts);

let seq = 0;
/** IPv4 clients of the dual-stack listener show up as ::ffff:a.b.c.d; report the address they used. */
const addr = (a) => (typeof a === 'string' ? a.replace(/^::ffff:/, '') : null);

// Appended synchronously, before any answer is written: once a client has its response, the test can read
// the record of its request.
function emit(record) {
  appendFileSync(config.recordFile, JSON.stringify({ at: Date.now(), ...record }) + '\n');
}

const SLOW_CHUNK_MS = 250;
const SLOW_CHUNKS = 12;

function lastUserText(messages) {
  const user = [...(Array.isArray(messages) ? messages : [])].reverse().find((m) => m && m.role === 'user');
  if (!user) return '';
  if (typeof user.content === 'string') return user.content;
  if (Array.isArray(user.content)) return user.content.map((p) => (typeof p.text === 'string' ? p.text : '')).join('');
  return '';
}

/** The reply's pieces: "echo: " + the prompt, word by word; slow mode pads it to SLOW_CHUNKS pieces. */
function replyPieces(prompt, slow) {
  const words = `echo: ${prompt}`.split(/(?<= )/);
  if (!slow) return words;
  while (words.length < SLOW_CHUNKS) words.push('.');
  return words;
}

function countTokens(text) {
  return text.split(/\s+/).filter(Boolean).length;
}

function sendJson(res, status, body, headers = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** Writes SSE events one by one (slowly in slow mode); records how the stream ended. */
async function sendSse(res, id, events, slow) {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
  let sent = 0;
  for (const ev of events) {
    if (res.destroyed) break;
    res.write(ev);
    sent++;
    if (sent === 1) emit({ type: 'stream-start', id });
    if (slow) await sleep(SLOW_CHUNK_MS);
  }
  res.end();
  emit({ type: 'stream-end', id, events: sent, of: events.length, complete: sent === events.length && !res.destroyed });
}

async function openai(req, res, id, body) {
  if (req.method !== 'POST' || req.url.split('?')[0] !== '/v1/chat/completions') {
    return sendJson(res, 404, { error: { message: `fake openai: no route ${req.method} ${req.url}`, type: 'invalid_request_error', param: null, code: 'not_found' } });
  }
  if (!String(req.headers.authorization ?? '').startsWith('Bearer ')) {
    return sendJson(res, 401, { error: { message: 'fake openai: missing bearer token', type: 'invalid_request_error', param: null, code: 'invalid_api_key' } });
  }
  const model = String(body.model ?? 'gpt-4o-mini');
  const slow = model.includes('slow');
  const prompt = lastUserText(body.messages);
  const pieces = replyPieces(prompt, slow);
  const usage = { prompt_tokens: countTokens(prompt), completion_tokens: pieces.length, total_tokens: countTokens(prompt) + pieces.length };
  const chatId = `chatcmpl-fake${id}`;
  const created = Math.floor(Date.now() / 1000);
  if (!body.stream) {
    return sendJson(res, 200, {
      id: chatId,
      object: 'chat.completion',
      created,
      model,
      choices: [{ index: 0, message: { role: 'assistant', content: pieces.join(''), refusal: null }, logprobs: null, finish_reason: 'stop' }],
      usage,
      system_fingerprint: 'fp_fake',
    });
  }
  const chunk = (choices, extra = {}) =>
    `data: ${JSON.stringify({ id: chatId, object: 'chat.completion.chunk', created, model, system_fingerprint: 'fp_fake', choices, ...extra })}\n\n`;
  const includeUsage = Boolean(body.stream_options && body.stream_options.include_usage);
  const nullUsage = includeUsage ? { usage: null } : {};
  const events = [
    chunk([{ index: 0, delta: { role: 'assistant', content: '', refusal: null }, logprobs: null, finish_reason: null }], nullUsage),
    ...pieces.map((p) => chunk([{ index: 0, delta: { content: p }, logprobs: null, finish_reason: null }], nullUsage)),
    chunk([{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }], nullUsage),
  ];
  if (includeUsage) events.push(chunk([], { usage }));
  events.push('data: [DONE]\n\n');
  return sendSse(res, id, events, slow);
}

async function anthropic(req, res, id, body) {
  if (req.method !== 'POST' || req.url.split('?')[0] !== '/v1/messages') {
    return sendJson(res, 404, { type: 'error', error: { type: 'not_found_error', message: `fake anthropic: no route ${req.method} ${req.url}` } });
  }
  // Older SDKs send the key as x-api-key, newer ones as a bearer token; the API takes both.
  const hasKey = Boolean(req.headers['x-api-key']) || String(req.headers.authorization ?? '').startsWith('Bearer ');
  if (!hasKey || !req.headers['anthropic-version']) {
    return sendJson(res, 401, { type: 'error', error: { type: 'authentication_error', message: 'fake anthropic: an API key (x-api-key or bearer) and anthropic-version are required' } });
  }
  const model = String(body.model ?? 'claude-haiku-4-5');
  const slow = model.includes('slow');
  const prompt = lastUserText(body.messages);
  const pieces = replyPieces(prompt, slow);
  const msgId = `msg_fake${id}`;
  const usage = { input_tokens: countTokens(prompt), output_tokens: pieces.length };
  if (!body.stream) {
    return sendJson(res, 200, {
      id: msgId,
      type: 'message',
      role: 'assistant',
      model,
      content: [{ type: 'text', text: pieces.join('') }],
      stop_reason: 'end_turn',
      stop_sequence: null,
      usage,
    });
  }
  const event = (name, data) => `event: ${name}\ndata: ${JSON.stringify({ type: name, ...data })}\n\n`;
  const events = [
    event('message_start', {
      message: { id: msgId, type: 'message', role: 'assistant', model, content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: usage.input_tokens, output_tokens: 1 } },
    }),
    event('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }),
    event('ping', {}),
    ...pieces.map((p) => event('content_block_delta', { index: 0, delta: { type: 'text_delta', text: p } })),
    event('content_block_stop', { index: 0 }),
    event('message_delta', { delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: usage.output_tokens } }),
    event('message_stop', {}),
  ];
  return sendSse(res, id, events, slow);
}

function plainSite(req, res, host) {
  const text = `fake ${host}: ${req.method} ${req.url}\n`;
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function handler(transport) {
  return (req, res) => {
    const id = ++seq;
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const host = String(req.headers.host ?? '').replace(/:\d+$/, '').toLowerCase();
      const sock = req.socket;
      emit({
        type: 'request',
        id,
        transport,
        sni: transport === 'https' ? sock.servername || null : null,
        alpn: transport === 'https' ? sock.alpnProtocol || null : null,
        remoteAddress: addr(sock.remoteAddress),
        remotePort: sock.remotePort,
        method: req.method,
        path: req.url,
        host,
        headers: req.headers,
        body: raw,
      });
      let body = {};
      if (raw && String(req.headers['content-type'] ?? '').includes('json')) {
        try {
          body = JSON.parse(raw);
        } catch {
          return sendJson(res, 400, { error: { message: 'fake provider: body is not JSON', type: 'invalid_request_error' } });
        }
      }
      const route = openaiHosts.has(host) ? openai : anthropicHosts.has(host) ? anthropic : undefined;
      const done = route ? route(req, res, id, body) : Promise.resolve(plainSite(req, res, host || 'unknown'));
      done.catch((err) => {
        emit({ type: 'error', id, message: String(err && err.message) });
        res.destroy();
      });
    });
  };
}

const httpsServer = https.createServer(
  {
    SNICallback: (name, cb) => cb(null, contexts.get(String(name).toLowerCase()) ?? contexts.get(config.defaultHost)),
    ...(() => {
      const d = config.certs[config.defaultHost];
      return { cert: readFileSync(d.cert), key: readFileSync(d.key) };
    })(),
    ALPNProtocols: ['http/1.1'],
  },
  handler('https'),
);
httpsServer.on('secureConnection', (s) =>
  emit({ type: 'connection', transport: 'https', sni: s.servername || null, remoteAddress: addr(s.remoteAddress), remotePort: s.remotePort }),
);
httpsServer.on('tlsClientError', (err, s) => emit({ type: 'tls-error', message: err.message, remoteAddress: addr(s.remoteAddress) }));

const httpServer = http.createServer(handler('http'));
httpServer.on('connection', (s) => emit({ type: 'connection', transport: 'http', remoteAddress: addr(s.remoteAddress), remotePort: s.remotePort }));

let listening = 0;
const ready = () => {
  if (++listening === 2) emit({ type: 'ready', pid: process.pid });
};
// '::' accepts IPv4 too (dual stack), so one listener serves both address families.
httpsServer.listen(config.httpsPort, '::', ready);
httpServer.listen(config.httpPort, '::', ready);

process.on('SIGTERM', () => process.exit(0));
