import { constants as h2c } from 'node:http2';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pipelineOf } from '../../sidecar/pipeline/index.js';
import type { Processor } from '../../sidecar/pipeline/types.js';
import { callTls, createTestPki, startTestProxy, type TestPki, type TestProxy } from '../unit/proxy/support.js';
import { type CountingProvider, countingProvider, h2Result, h2Session } from './support.js';

// Rapid reset (CVE-2023-44487) as a billing attack: an app (or anything in the pod) opens chat requests and
// cancels them at once. A request whose client is gone before the policy steps finish must not reach the
// provider: each one that did would be a billed call nobody reads.

const OPENAI = 'api.openai.com';
/** A request step that takes a while (a guard service, a budget store): the window in which the reset lands. */
const slowStep: Processor = {
  name: 'slow-guard',
  type: 'test',
  phase: 'admit',
  onRequest: () => new Promise((r) => setTimeout(() => r({ action: 'continue' }), 150)),
};

let pki: TestPki;
let proxy: TestProxy;
let provider: CountingProvider;

beforeAll(async () => {
  pki = await createTestPki();
  provider = await countingProvider(pki, OPENAI);
  proxy = await startTestProxy(pki, { buildPipeline: () => pipelineOf([slowStep]), resolve: { [OPENAI]: { host: '127.0.0.1', port: provider.port } } });
  await proxy.handle.ready;
});
afterAll(async () => {
  await proxy.handle.close();
  await provider.close();
});

describe('requests cancelled before the pipeline finished', () => {
  it('HTTP/2: 500 streams reset right after their body reach the provider 0 times; the session still serves', async () => {
    const s = await h2Session(proxy.handle.capturePort, OPENAI, pki.caPem);
    const before = provider.reached;
    for (let i = 0; i < 500; i += 50) {
      const batch = Array.from({ length: 50 }, () => {
        const st = s.request({ ':method': 'POST', ':path': '/v1/chat/completions', 'content-type': 'application/json' });
        const done = h2Result(st);
        st.end('{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}', () => st.close(h2c.NGHTTP2_CANCEL));
        return done;
      });
      await Promise.all(batch);
    }
    await new Promise((r) => setTimeout(r, 400)); // past the slow step: a leaked request would have been sent by now
    expect(provider.reached - before).toBe(0);
    const ok = await h2Result(s.request({ ':method': 'GET', ':path': '/v1/models' }));
    expect(ok.status).toBe(200);
    expect(provider.reached - before).toBe(1);
    s.close();
  });

  it('HTTP/1.1: a client that sends its request and hangs up is not forwarded', async () => {
    const before = provider.reached;
    await Promise.all(
      Array.from({ length: 50 }, () =>
        new Promise<void>((resolve) => {
          const t = tlsConnect({ host: '127.0.0.1', port: proxy.handle.capturePort, servername: OPENAI, ca: pki.caPem }, () => {
            const body = '{"model":"gpt-4o","messages":[]}';
            t.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: ${OPENAI}\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`, () => t.destroy());
          });
          t.on('close', () => resolve());
          t.on('error', () => undefined);
        }),
      ),
    );
    await new Promise((r) => setTimeout(r, 400));
    expect(provider.reached - before).toBe(0);
    const ok = await callTls(proxy.handle.capturePort, OPENAI, pki.caPem, { method: 'GET', path: '/v1/models' });
    expect(ok.status).toBe(200);
  });
});
