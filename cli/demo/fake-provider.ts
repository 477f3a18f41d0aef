import { Buffer } from 'node:buffer';
import type { EventStreamCodec } from '@smithy/eventstream-codec';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { createRequire } from 'node:module';
import type { AddressInfo, Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { createSecureContext, type SecureContext, type TLSSocket } from 'node:tls';
import { isObj } from '../../shared/json.js';

// A stand-in for the outside world: one server pair that plays api.openai.com, api.anthropic.com, Bedrock runtime
// hosts and a non-AI host over HTTPS (certificates chosen by SNI, from a root of the caller's that stands in for
// the public roots) and plain HTTP. The demo runs it in-process; the e2e suite runs it as its own process in a
// network namespace (fake-provider-main.ts). node: built-ins only at load, so that process starts fast under a
// bare `node`; the AWS event-stream codec (a production dependency) is loaded on the first Bedrock stream.
//
// Every connection and request is reported as a record, synchronously, before any answer is written: once a
// client has its response, the record of its request exists. Answers are derived from the request (the reply
// echoes the last user message), so a caller can tell its own answer from any other. A model name containing
// "slow" streams slowly, for drain tests. Bedrock requests must carry an Authorization header (SigV4 or a
// Bedrock API key); the signature is not verified — the request record keeps the header for tests to read.

export interface ConnectionRecord {
  type: 'connection';
  at: number;
  transport: 'https' | 'http';
  sni?: string | null;
  remoteAddress: string | null;
  remotePort?: number;
}

export interface RequestRecord {
  type: 'request';
  at: number;
  id: number;
  transport: 'https' | 'http';
  sni: string | null;
  alpn: string | null;
  remoteAddress: string | null;
  remotePort: number;
  method: string;
  path: string;
  host: string;
  headers: Record<string, string | string[]>;
  body: string;
}

export interface StreamRecord {
  type: 'stream-start' | 'stream-end';
  at: number;
  id: number;
  events?: number;
  of?: number;
  complete?: boolean;
}

export interface ReadyRecord {
  type: 'ready';
  at: number;
  pid: number;
}

export interface ErrorRecord {
  type: 'error' | 'tls-error';
  at: number;
  id?: number;
  message: string;
  remoteAddress?: string | null;
}

/** What the fake answered to a provider call (see FakeAnswer), recorded before the answer is written. */
export type AnswerRecord = { type: 'answer'; at: number } & FakeAnswer;

export type FakeRecord = ConnectionRecord | RequestRecord | StreamRecord | ReadyRecord | ErrorRecord | AnswerRecord;

/** A record before its timestamp is added. */
type RecordBody = FakeRecord extends infer R ? (R extends FakeRecord ? Omit<R, 'at'> : never) : never;

/** What the fake answered to a provider call: the usage it reported, however it reported it (body or stream). */
export interface FakeAnswer {
  /** The id of the request record it answers. */
  id: number;
  provider: 'openai' | 'anthropic' | 'bedrock';
  model: string;
  stream: boolean;
  /** Tokens the fake reported in its answer, in the provider's own fields (prompt/input, completion/output). */
  usage: { input: number; output: number };
  /** Whether the answer carried the usage at all (an OpenAI stream only does with stream_options.include_usage). */
  usageSent: boolean;
}

export interface PemCertificate {
  cert: string;
  key: string;
}

export interface FakeProviderOptions {
  /** 0 picks a free port. */
  httpsPort: number;
  httpPort: number;
  /** Listen address; default '::', which accepts IPv4 too (dual stack). */
  listenAddress?: string;
  /** Host → PEM certificate and key, served for that SNI name. */
  certs: Readonly<Record<string, PemCertificate>>;
  /** Whose certificate a ClientHello without a known name gets; must be a key of `certs`. */
  defaultHost: string;
  openaiHosts: readonly string[];
  anthropicHosts: readonly string[];
  /** Bedrock runtime hosts (`bedrock-runtime.{region}.amazonaws.com`): Converse and ConverseStream. */
  bedrockHosts?: readonly string[];
  /** Called with each record as it happens (synchronously, before the answer is written). */
  onRecord?: (record: FakeRecord) => void;
}

export interface FakeProviderHandle {
  readonly httpsPort: number;
  readonly httpPort: number;
  /** Everything reported so far, in order. */
  readonly records: readonly FakeRecord[];
  /** Every provider call answered, in order. */
  readonly answers: readonly FakeAnswer[];
  close(): Promise<void>;
}

const SLOW_CHUNK_MS = 250;
const SLOW_CHUNKS = 12;

type Json = Record<string, unknown>;

/** IPv4 clients of a dual-stack listener show up as ::ffff:a.b.c.d; report the address they used. */
const addr = (a: string | undefined): string | null => (typeof a === 'string' ? a.replace(/^::ffff:/, '') : null);

export function lastUserText(messages: unknown): string {
  const list = Array.isArray(messages) ? (messages as unknown[]) : [];
  const user = [...list].reverse().find((m): m is Json => isObj(m) && m.role === 'user');
  if (!user) return '';
  if (typeof user.content === 'string') return user.content;
  if (Array.isArray(user.content)) {
    return (user.content as unknown[]).map((p) => (isObj(p) && typeof p.text === 'string' ? p.text : '')).join('');
  }
  return '';
}

/** The reply's pieces: "echo: " + the prompt, word by word; slow mode pads it to SLOW_CHUNKS pieces. */
export function replyPieces(prompt: string, slow: boolean): string[] {
  const words = `echo: ${prompt}`.split(/(?<= )/);
  if (!slow) return words;
  while (words.length < SLOW_CHUNKS) words.push('.');
  return words;
}

export function countTokens(text: string): number {
  return text.split(/\s+/).filter(Boolean).length;
}

function header(req: IncomingMessage, name: string): string {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(', ') : (v ?? '');
}

let eventStream: EventStreamCodec | undefined;

/** AWS event-stream framing (application/vnd.amazon.eventstream), as Bedrock streams ConverseStream. */
function eventStreamCodec(): EventStreamCodec {
  if (!eventStream) {
    const require = createRequire(import.meta.url);
    const { EventStreamCodec: Codec } = require('@smithy/eventstream-codec') as typeof import('@smithy/eventstream-codec');
    eventStream = new Codec(
      (bytes) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'),
      (text) => Buffer.from(text, 'utf8'),
    );
  }
  return eventStream;
}

/** One ConverseStream event: an event-stream message with Bedrock's headers and a JSON payload. */
export function bedrockEvent(type: string, payload: Json): Uint8Array {
  const str = (value: string) => ({ type: 'string' as const, value });
  return eventStreamCodec().encode({
    headers: { ':event-type': str(type), ':content-type': str('application/json'), ':message-type': str('event') },
    body: Buffer.from(JSON.stringify(payload), 'utf8'),
  });
}

// Bedrock pads each stream event with a `p` member of varying length so sizes do not leak the text.
const PAD = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
const padding = (n: number): string => PAD.slice(0, (n * 17) % PAD.length);

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** Starts both listeners; resolves once both listen (after the `ready` record). */
export async function startFakeProvider(opts: FakeProviderOptions): Promise<FakeProviderHandle> {
  const defaultCert = opts.certs[opts.defaultHost];
  if (!defaultCert) throw new Error(`defaultHost ${opts.defaultHost}: no certificate for it in certs`);
  const contexts = new Map<string, SecureContext>(
    Object.entries(opts.certs).map(([host, pem]) => [host.toLowerCase(), createSecureContext({ cert: pem.cert, key: pem.key })]),
  );
  const openaiHosts = new Set(opts.openaiHosts.map((h) => h.toLowerCase()));
  const anthropicHosts = new Set(opts.anthropicHosts.map((h) => h.toLowerCase()));
  const bedrockHosts = new Set((opts.bedrockHosts ?? []).map((h) => h.toLowerCase()));
  const records: FakeRecord[] = [];
  const answers: FakeAnswer[] = [];
  let seq = 0;

  function emit(body: RecordBody): void {
    const record = { at: Date.now(), ...body } as FakeRecord;
    records.push(record);
    opts.onRecord?.(record);
  }

  /** Keeps the answer (for the demo) and records it (for a process's record file) before it is written. */
  function answered(answer: FakeAnswer): void {
    answers.push(answer);
    emit({ type: 'answer', ...answer });
  }

  /** Writes SSE events one by one (slowly in slow mode); records how the stream ended. */
  function sendSse(res: ServerResponse, id: number, events: readonly string[], slow: boolean, headers: Record<string, string> = {}): Promise<void> {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', ...headers });
    return sendEvents(res, id, events, slow);
  }

  /** Writes the events of a stream whose head is sent, one write each; records how the stream ended. */
  async function sendEvents(res: ServerResponse, id: number, events: readonly (string | Uint8Array)[], slow: boolean): Promise<void> {
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

  async function openai(req: IncomingMessage, res: ServerResponse, id: number, body: Json): Promise<void> {
    const url = req.url ?? '/';
    if (req.method !== 'POST' || url.split('?')[0] !== '/v1/chat/completions') {
      return sendJson(res, 404, { error: { message: `fake openai: no route ${req.method} ${url}`, type: 'invalid_request_error', param: null, code: 'not_found' } });
    }
    if (!header(req, 'authorization').startsWith('Bearer ')) {
      return sendJson(res, 401, { error: { message: 'fake openai: missing bearer token', type: 'invalid_request_error', param: null, code: 'invalid_api_key' } });
    }
    const model = String(body.model ?? 'gpt-4o-mini');
    const slow = model.includes('slow');
    const prompt = lastUserText(body.messages);
    const pieces = replyPieces(prompt, slow);
    const usage = { prompt_tokens: countTokens(prompt), completion_tokens: pieces.length, total_tokens: countTokens(prompt) + pieces.length };
    const chatId = `chatcmpl-fake${id}`;
    // Providers name each answer with a request id header (the audit record carries it).
    const requestId = { 'x-request-id': `req_fake${id}` };
    const created = Math.floor(Date.now() / 1000);
    const stream = Boolean(body.stream);
    const includeUsage = isObj(body.stream_options) && Boolean(body.stream_options.include_usage);
    answered({ id, provider: 'openai', model, stream, usage: { input: usage.prompt_tokens, output: usage.completion_tokens }, usageSent: !stream || includeUsage });
    if (!stream) {
      return sendJson(res, 200, {
        id: chatId,
        object: 'chat.completion',
        created,
        model,
        choices: [{ index: 0, message: { role: 'assistant', content: pieces.join(''), refusal: null }, logprobs: null, finish_reason: 'stop' }],
        usage,
        system_fingerprint: 'fp_fake',
      }, requestId);
    }
    const chunk = (choices: unknown[], extra: Json = {}): string =>
      `data: ${JSON.stringify({ id: chatId, object: 'chat.completion.chunk', created, model, system_fingerprint: 'fp_fake', choices, ...extra })}\n\n`;
    const nullUsage = includeUsage ? { usage: null } : {};
    const events = [
      chunk([{ index: 0, delta: { role: 'assistant', content: '', refusal: null }, logprobs: null, finish_reason: null }], nullUsage),
      ...pieces.map((p) => chunk([{ index: 0, delta: { content: p }, logprobs: null, finish_reason: null }], nullUsage)),
      chunk([{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }], nullUsage),
    ];
    if (includeUsage) events.push(chunk([], { usage }));
    events.push('data: [DONE]\n\n');
    return sendSse(res, id, events, slow, requestId);
  }

  async function anthropic(req: IncomingMessage, res: ServerResponse, id: number, body: Json): Promise<void> {
    const url = req.url ?? '/';
    if (req.method !== 'POST' || url.split('?')[0] !== '/v1/messages') {
      return sendJson(res, 404, { type: 'error', error: { type: 'not_found_error', message: `fake anthropic: no route ${req.method} ${url}` } });
    }
    // Older SDKs send the key as x-api-key, newer ones as a bearer token; the API takes both.
    const hasKey = Boolean(req.headers['x-api-key']) || header(req, 'authorization').startsWith('Bearer ');
    if (!hasKey || !req.headers['anthropic-version']) {
      return sendJson(res, 401, {
        type: 'error',
        error: { type: 'authentication_error', message: 'fake anthropic: an API key (x-api-key or bearer) and anthropic-version are required' },
      });
    }
    const model = String(body.model ?? 'claude-haiku-4-5');
    const slow = model.includes('slow');
    const prompt = lastUserText(body.messages);
    const pieces = replyPieces(prompt, slow);
    const msgId = `msg_fake${id}`;
    const requestId = { 'request-id': `req_fake${id}` };
    const usage = { input_tokens: countTokens(prompt), output_tokens: pieces.length };
    const stream = Boolean(body.stream);
    answered({ id, provider: 'anthropic', model, stream, usage: { input: usage.input_tokens, output: usage.output_tokens }, usageSent: true });
    if (!stream) {
      return sendJson(res, 200, {
        id: msgId,
        type: 'message',
        role: 'assistant',
        model,
        content: [{ type: 'text', text: pieces.join('') }],
        stop_reason: 'end_turn',
        stop_sequence: null,
        usage,
      }, requestId);
    }
    const event = (name: string, data: Json): string => `event: ${name}\ndata: ${JSON.stringify({ type: name, ...data })}\n\n`;
    const events = [
      event('message_start', {
        message: {
          id: msgId,
          type: 'message',
          role: 'assistant',
          model,
          content: [],
          stop_reason: null,
          stop_sequence: null,
          usage: { input_tokens: usage.input_tokens, output_tokens: 1 },
        },
      }),
      event('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }),
      event('ping', {}),
      ...pieces.map((p) => event('content_block_delta', { index: 0, delta: { type: 'text_delta', text: p } })),
      event('content_block_stop', { index: 0 }),
      event('message_delta', { delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: usage.output_tokens } }),
      event('message_stop', {}),
    ];
    return sendSse(res, id, events, slow, requestId);
  }

  /** Bedrock's error shape: `{message}`, the error's name in x-amzn-errortype (what the AWS SDKs read). */
  function bedrockError(res: ServerResponse, status: number, type: string, message: string): void {
    sendJson(res, status, { message }, { 'x-amzn-errortype': type });
  }

  async function bedrock(req: IncomingMessage, res: ServerResponse, id: number, body: Json): Promise<void> {
    const url = req.url ?? '/';
    const route = /^\/model\/([^/]+)\/(converse|converse-stream)$/.exec(url.split('?')[0]!);
    if (req.method !== 'POST' || !route) {
      return bedrockError(res, 404, 'UnknownOperationException', `fake bedrock: no route ${req.method} ${url}`);
    }
    // SigV4 (or a Bedrock API key as a bearer token): present, not verified.
    if (!header(req, 'authorization')) {
      return bedrockError(res, 403, 'MissingAuthenticationTokenException', 'fake bedrock: Missing Authentication Token');
    }
    let model: string;
    try {
      model = decodeURIComponent(route[1]!);
    } catch {
      return bedrockError(res, 400, 'ValidationException', `fake bedrock: model ID ${route[1]} is not percent-encoded correctly`);
    }
    const started = Date.now();
    const slow = model.includes('slow');
    const prompt = lastUserText(body.messages);
    const pieces = replyPieces(prompt, slow);
    const usage = { inputTokens: countTokens(prompt), outputTokens: pieces.length, totalTokens: countTokens(prompt) + pieces.length };
    const stream = route[2] === 'converse-stream';
    answered({ id, provider: 'bedrock', model, stream, usage: { input: usage.inputTokens, output: usage.outputTokens }, usageSent: true });
    const requestId = `fake-bedrock-${id}`;
    if (!stream) {
      return sendJson(res, 200, {
        output: { message: { role: 'assistant', content: [{ text: pieces.join('') }] } },
        stopReason: 'end_turn',
        usage,
        metrics: { latencyMs: Date.now() - started },
      }, { 'x-amzn-requestid': requestId });
    }
    const events = [
      bedrockEvent('messageStart', { role: 'assistant', p: padding(0) }),
      ...pieces.map((text, i) => bedrockEvent('contentBlockDelta', { contentBlockIndex: 0, delta: { text }, p: padding(i + 1) })),
      bedrockEvent('contentBlockStop', { contentBlockIndex: 0, p: padding(pieces.length + 1) }),
      bedrockEvent('messageStop', { stopReason: 'end_turn', p: padding(pieces.length + 2) }),
      bedrockEvent('metadata', { usage, metrics: { latencyMs: Date.now() - started }, p: padding(pieces.length + 3) }),
    ];
    res.writeHead(200, { 'content-type': 'application/vnd.amazon.eventstream', 'x-amzn-requestid': requestId });
    return sendEvents(res, id, events, slow);
  }

  function plainSite(req: IncomingMessage, res: ServerResponse, host: string): void {
    const text = `fake ${host}: ${req.method} ${req.url}\n`;
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }

  function handler(transport: 'https' | 'http') {
    return (req: IncomingMessage, res: ServerResponse): void => {
      const id = ++seq;
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        const host = header(req, 'host').replace(/:\d+$/, '').toLowerCase();
        const sock = req.socket;
        const tlsSock = transport === 'https' ? (sock as TLSSocket) : undefined;
        emit({
          type: 'request',
          id,
          transport,
          sni: tlsSock ? tlsSock.servername || null : null,
          alpn: tlsSock ? tlsSock.alpnProtocol || null : null,
          remoteAddress: addr(sock.remoteAddress),
          remotePort: sock.remotePort ?? 0,
          method: req.method ?? '',
          path: req.url ?? '',
          host,
          headers: req.headers as Record<string, string | string[]>,
          body: raw,
        });
        let body: Json = {};
        if (raw && header(req, 'content-type').includes('json')) {
          let parsed: unknown;
          try {
            parsed = JSON.parse(raw);
          } catch {
            return sendJson(res, 400, { error: { message: 'fake provider: body is not JSON', type: 'invalid_request_error' } });
          }
          if (isObj(parsed)) body = parsed;
        }
        const route = openaiHosts.has(host) ? openai : anthropicHosts.has(host) ? anthropic : bedrockHosts.has(host) ? bedrock : undefined;
        const done = route ? route(req, res, id, body) : Promise.resolve(plainSite(req, res, host || 'unknown'));
        done.catch((err: unknown) => {
          emit({ type: 'error', id, message: String(err instanceof Error ? err.message : err) });
          res.destroy();
        });
      });
    };
  }

  const httpsServer: HttpsServer = createHttpsServer(
    {
      SNICallback: (name, cb) => cb(null, contexts.get(String(name).toLowerCase()) ?? contexts.get(opts.defaultHost.toLowerCase())),
      cert: defaultCert.cert,
      key: defaultCert.key,
      ALPNProtocols: ['http/1.1'],
    },
    handler('https'),
  );
  httpsServer.on('secureConnection', (s: TLSSocket) =>
    emit({ type: 'connection', transport: 'https', sni: s.servername || null, remoteAddress: addr(s.remoteAddress), remotePort: s.remotePort }),
  );
  httpsServer.on('tlsClientError', (err: Error, s: TLSSocket) => emit({ type: 'tls-error', message: err.message, remoteAddress: addr(s.remoteAddress) }));

  const httpServer: HttpServer = createHttpServer(handler('http'));
  httpServer.on('connection', (s: Socket) => emit({ type: 'connection', transport: 'http', remoteAddress: addr(s.remoteAddress), remotePort: s.remotePort }));

  const host = opts.listenAddress ?? '::';
  const listen = (server: HttpServer | HttpsServer, port: number): Promise<number> =>
    new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve((server.address() as AddressInfo).port);
      });
    });
  let httpsPort: number;
  let httpPort: number;
  try {
    [httpsPort, httpPort] = await Promise.all([listen(httpsServer, opts.httpsPort), listen(httpServer, opts.httpPort)]);
  } catch (err) {
    httpsServer.close();
    httpServer.close();
    throw err;
  }
  emit({ type: 'ready', pid: process.pid });

  const closeServer = (server: HttpServer | HttpsServer): Promise<void> =>
    new Promise((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  return {
    httpsPort,
    httpPort,
    records,
    answers,
    close: async () => {
      await Promise.all([closeServer(httpsServer), closeServer(httpServer)]);
    },
  };
}
