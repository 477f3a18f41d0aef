import type { IncomingMessage, ServerResponse } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fdsSettle, openFds, rssMb } from '../support/resources.js';
import { createTestPki, fakeUpstream, metricValue, policyYaml, startTestProxy, type TestPki, type TestProxy } from '../unit/proxy/support.js';

// The provider misbehaves in each way a real one does; the app must see what it would have seen from the
// provider itself (an error status in the provider's shape, or a stream that breaks the way a broken stream
// breaks), each failure counted by kind, nothing retried that may have reached the provider, and nothing
// (sockets, timers, memory) left behind.

const OPENAI = 'api.openai.com';
const ANTHROPIC = 'api.anthropic.com'; // served with a certificate for another name
const MISTRAL = 'api.mistral.ai'; // nothing listens
const UPSTREAM_TIMEOUT_MS = 400;

type Behaviour = (req: IncomingMessage, res: ServerResponse) => void;
const event = 'data: {"choices":[{"delta":{"content":"hi"}}]}\n\n';
const behaviours: Record<string, Behaviour> = {
  '/ok': (_q, res) => res.end('{"ok":true}'),
  '/reset-mid-response': (_q, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write(event);
    // A TCP RST: resetAndDestroy works on the TCP socket beneath the TLS one.
    setTimeout(() => (res.socket as unknown as { _parent: Socket })._parent.resetAndDestroy(), 20);
  },
  '/stall-before-headers': () => undefined,
  '/stall-mid-stream': (_q, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write(event); // then nothing: the proxy's idle-body timeout ends it
  },
  '/cut-stream': (_q, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': '1000' });
    res.write('{"choices":[');
    setTimeout(() => res.socket?.end(), 20); // clean FIN, 988 bytes short
  },
  '/5xx': (_q, res) => {
    res.writeHead(503, { 'content-type': 'application/json' });
    res.end('{"error":{"message":"The server is overloaded","type":"server_error"}}');
  },
  '/slow-first-byte': (_q, res) => {
    setTimeout(() => res.end('{"ok":"late"}'), UPSTREAM_TIMEOUT_MS / 2);
  },
};

let pki: TestPki;
let proxy: TestProxy;
const hits = new Map<string, number>();
const closers: (() => Promise<void>)[] = [];

beforeAll(async () => {
  pki = await createTestPki();
  const good = await fakeUpstream(pki, OPENAI, (req, res) => {
    hits.set(req.url!, (hits.get(req.url!) ?? 0) + 1);
    req.resume();
    req.on('end', () => (behaviours[req.url!] ?? behaviours['/ok']!)(req, res));
  });
  closers.push(good.close);
  const wrongName = await fakeUpstream(pki, 'not-anthropic.example', (_q, res) => res.end('should not be reached'));
  closers.push(wrongName.close);
  const closed: Server = createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const closedPort = (closed.address() as { port: number }).port;
  await new Promise<void>((r) => closed.close(() => r())); // the port is free again: connections are refused
  proxy = await startTestProxy(pki, {
    policyText: policyYaml({ providers: ['openai', 'anthropic', 'mistral'] }),
    upstreamTimeoutMs: UPSTREAM_TIMEOUT_MS,
    resolve: {
      [OPENAI]: { host: '127.0.0.1', port: good.port },
      [ANTHROPIC]: { host: '127.0.0.1', port: wrongName.port },
      [MISTRAL]: { host: '127.0.0.1', port: closedPort },
    },
  });
  await proxy.handle.ready;
});
afterAll(async () => {
  await proxy.handle.close();
  for (const c of closers) await c();
});

interface AppSees {
  status: number;
  body: string;
  /** How the response ended for the app: cleanly, or broken (aborted / reset / premature close). */
  ended: 'end' | 'broken';
}

function call(host: string, path: string): Promise<AppSees> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      { host: '127.0.0.1', port: proxy.handle.capturePort, servername: host, ca: pki.caPem, method: 'POST', path, headers: { host, 'content-type': 'application/json' }, agent: false },
      (res) => {
        let body = '';
        let done = false;
        const finish = (ended: AppSees['ended']): void => {
          if (done) return;
          done = true;
          resolve({ status: res.statusCode ?? 0, body, ended });
        };
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => finish(res.complete ? 'end' : 'broken'));
        res.on('aborted', () => finish('broken'));
        res.on('error', () => finish('broken'));
        res.on('close', () => finish(res.complete ? 'end' : 'broken'));
      },
    );
    req.on('error', reject);
    req.end('{"model":"gpt-4o","messages":[]}');
  });
}

const errorsOf = async (provider: string, reason: string): Promise<number> =>
  metricValue(await proxy.handle.registry.metrics(), 'aigress_upstream_errors_total', { provider, reason });

interface Case {
  fault: string;
  host: string;
  path: string;
  provider: string;
  /** What the app sees. */
  expect: (r: AppSees) => void;
  /** aigress_upstream_errors_total reason it is counted under (none for a provider answer relayed as is). */
  counted?: string;
}

const cases: Case[] = [
  {
    fault: 'connection refused', host: MISTRAL, path: '/v1/chat/completions', provider: 'mistral', counted: 'refused',
    expect: (r) => {
      expect(r.status).toBe(502);
      expect(JSON.parse(r.body)).toMatchObject({ object: 'error' }); // Mistral's error shape
    },
  },
  {
    fault: 'reset mid-response', host: OPENAI, path: '/reset-mid-response', provider: 'openai', counted: 'truncated',
    expect: (r) => {
      expect(r.status).toBe(200);
      expect(r.body).toBe(event); // what arrived before the reset, nothing appended
      expect(r.ended).toBe('broken');
    },
  },
  {
    fault: 'stall before headers', host: OPENAI, path: '/stall-before-headers', provider: 'openai', counted: 'timeout',
    expect: (r) => {
      expect(r.status).toBe(504);
      expect(JSON.parse(r.body)).toMatchObject({ error: { code: 'aigress_timeout' } });
    },
  },
  {
    fault: 'stall mid-stream', host: OPENAI, path: '/stall-mid-stream', provider: 'openai', counted: 'truncated',
    expect: (r) => {
      expect(r.status).toBe(200);
      expect(r.body).toBe(event);
      expect(r.ended).toBe('broken');
    },
  },
  {
    fault: 'stream cut before its end (clean FIN, short of content-length)', host: OPENAI, path: '/cut-stream', provider: 'openai', counted: 'truncated',
    expect: (r) => {
      expect(r.status).toBe(200);
      expect(r.body).toBe('{"choices":[');
      expect(r.ended).toBe('broken');
    },
  },
  {
    fault: '5xx answer', host: OPENAI, path: '/5xx', provider: 'openai',
    expect: (r) => {
      expect(r.status).toBe(503); // the provider's own answer, relayed
      expect(JSON.parse(r.body)).toEqual({ error: { message: 'The server is overloaded', type: 'server_error' } });
      expect(r.ended).toBe('end');
    },
  },
  {
    fault: 'certificate for another name', host: ANTHROPIC, path: '/v1/messages', provider: 'anthropic', counted: 'tls',
    expect: (r) => {
      expect(r.status).toBe(502);
      expect(r.body).not.toContain('should not be reached');
      expect(JSON.parse(r.body)).toMatchObject({ type: 'error', error: { type: 'api_error' } }); // Anthropic's shape
    },
  },
  {
    fault: 'slow first byte (within the timeout)', host: OPENAI, path: '/slow-first-byte', provider: 'openai',
    expect: (r) => {
      expect(r.status).toBe(200);
      expect(r.body).toBe('{"ok":"late"}');
      expect(r.ended).toBe('end');
    },
  },
];

describe('provider-side faults', () => {
  // By name: vitest sends each.() arguments between processes, and these cases hold functions.
  it.each(cases.map((c) => c.fault))('%s: the app sees what the provider would have caused, counted by kind, sent once', async (fault) => {
    const c = cases.find((x) => x.fault === fault)!;
    const before = c.counted ? await errorsOf(c.provider, c.counted) : 0;
    const hitsBefore = hits.get(c.path) ?? 0;
    const r = await call(c.host, c.path);
    c.expect(r);
    if (c.counted) expect(await errorsOf(c.provider, c.counted)).toBe(before + 1);
    // Never retried: a POST that may have reached the provider is sent once (fake provider's count).
    if (c.host === OPENAI) expect((hits.get(c.path) ?? 0) - hitsBefore).toBe(1);
  });

  it('20 rounds of every fault leave descriptors and memory where they were', async () => {
    const round = (): Promise<AppSees[]> => Promise.all(cases.map((c) => call(c.host, c.path)));
    await round(); // warm: pools, certificates, lazily opened descriptors
    const fds0 = openFds();
    const rss0 = rssMb();
    for (let i = 0; i < 20; i++) await round();
    // Kept-alive connections to the good provider may stay (pool), a handful at most.
    const after = await fdsSettle(fds0 + 10);
    expect(after - fds0).toBeLessThanOrEqual(10);
    const rss1 = rssMb();
    console.log(`faults: 160 faulty requests, fds ${fds0} → ${after}, RSS ${rss0} → ${rss1} MB`);
    expect(rss1 - rss0).toBeLessThan(64); // a leak of these objects would be far larger; the figure is in the log
  });
});
