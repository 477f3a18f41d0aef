// A budget through the real proxy (standalone mode, the real pipeline, the real Redis) as the unmodified
// `openai` SDK sees it: a burst past the budget gets 429 RateLimitError with Retry-After and the x-ratelimit
// headers, nothing of the refused requests reaches the provider, and the SDK's own retries (which sleep for
// exactly Retry-After) pass once the window has freed capacity.
import { connect as tlsConnect } from 'node:tls';
import OpenAI from 'openai';
import { Agent, fetch as undiciFetch } from 'undici';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeRedis, startRedis, type RedisServer } from '../../support/redis-server.js';
import { buildPipeline } from '../../../sidecar/pipeline/index.js';
import { createTestPki, fakeUpstream, policyYaml, startTestProxy, type TestPki, type TestProxy } from '../proxy/support.js';

describeRedis('budgets through the proxy, seen by the openai SDK', () => {
  let redis: RedisServer;
  let pki: TestPki;
  let proxy: TestProxy;
  let upstream: Awaited<ReturnType<typeof fakeUpstream>>;
  let hits = 0;

  beforeAll(async () => {
    redis = await startRedis();
    pki = await createTestPki();
    upstream = await fakeUpstream(pki, 'api.openai.com', (req, res) => {
      hits++;
      req.resume();
      req.on('end', () => {
        // held a little, so a burst is really concurrent
        setTimeout(() => {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ id: 'c', object: 'chat.completion', created: 1, model: 'gpt-4o', choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }], usage: { prompt_tokens: 10, completion_tokens: 2, total_tokens: 12 } }));
        }, 200);
      });
    });
    proxy = await startTestProxy(pki, {
      policyText: `${policyYaml({ providers: ['openai'] })}  budgets: [{ tokens: 2000, per: 2s, scope: namespace }]\n`,
      buildPipeline,
      redisUrl: redis.url,
      identity: { namespace: 'team-a', pod: 'chat-1' },
      resolve: { 'api.openai.com': { host: '127.0.0.1', port: upstream.port } },
    });
    await proxy.handle.ready;
  });
  afterAll(async () => {
    await proxy.handle.close();
    await upstream.close();
    await redis.close();
  });

  // The app's connection as the pod's iptables would deliver it: to the capture port, SNI api.openai.com.
  const client = (maxRetries: number): OpenAI => {
    const agent = new Agent({
      connect: (_opts, cb) => {
        const s = tlsConnect({ host: '127.0.0.1', port: proxy.handle.capturePort, servername: 'api.openai.com', ca: pki.caPem, ALPNProtocols: ['http/1.1'] });
        s.once('secureConnect', () => cb(null, s));
        s.once('error', (err) => cb(err, null));
      },
    });
    return new OpenAI({ apiKey: 'sk-test', maxRetries, fetch: ((url: string, init: object) => undiciFetch(url, { ...init, dispatcher: agent })) as unknown as typeof fetch });
  };
  const ask = (c: OpenAI) => c.chat.completions.create({ model: 'gpt-4o', max_tokens: 600, messages: [{ role: 'user', content: 'hi' }] });

  it('a burst past the budget gets 429 with Retry-After; retries bounded by it pass after the window', async () => {
    const noRetry = client(0);
    hits = 0;
    const burst = await Promise.allSettled(Array.from({ length: 5 }, () => ask(noRetry)));
    const ok = burst.filter((r) => r.status === 'fulfilled').length;
    const refused = burst.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason as InstanceType<typeof OpenAI.RateLimitError>);
    expect(ok).toBe(3); // 3 × (~610 reserved) fit in 2000, the other two do not
    expect(refused).toHaveLength(2);
    expect(hits).toBe(3); // nothing of a refused request left the pod
    for (const e of refused) {
      expect(e).toBeInstanceOf(OpenAI.RateLimitError);
      expect(e.status).toBe(429);
      expect(e.code).toBe('aigress_budget');
      const retryAfter = Number(e.headers.get('retry-after'));
      expect(retryAfter).toBeGreaterThanOrEqual(1);
      expect(retryAfter).toBeLessThanOrEqual(3);
      expect(e.headers.get('x-ratelimit-limit-tokens')).toBe('2000');
      expect(e.headers.get('x-ratelimit-remaining-tokens')).not.toBeNull();
      expect(e.headers.get('x-should-retry')).toBeNull();
    }
    // With the SDK's default retries: the refused ones wait Retry-After, then pass (the window slid on).
    hits = 0;
    const retrying = client(2);
    const again = await Promise.allSettled(Array.from({ length: 5 }, () => ask(retrying)));
    expect(again.filter((r) => r.status === 'fulfilled')).toHaveLength(5);
    expect(hits).toBe(5);
  }, 30_000);
});
