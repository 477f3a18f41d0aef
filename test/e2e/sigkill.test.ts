import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { OPENAI_HOST, PLAIN_HOST, type RequestRecord, type StreamRecord } from './support/fake-provider.js';
import { APPS_DIR, CURL } from './support/paths.js';
import { APP, PodSession, promptLog } from './support/pod-session.js';
import { describeRoot } from './support/require-root.js';

// The proxy killed with SIGKILL in the middle of a stream (an OOM kill, a node crash): the app must see a
// broken stream, not a hang; while no proxy runs, the pod's AI traffic is refused by the capture rules rather
// than sent direct; and the proxy the kubelet restarts serves again at once. pod.test.ts covers a proxy that is
// simply not running; this is the kill itself and the restart.

const KEYS = { openai: 'sk-e2e-kill-openai-0000', anthropic: 'sk-ant-e2e-kill-0000' };
const { prompt } = promptLog();
/** Longer than the slow stream (~3 s): an app still running by then is hanging on a dead connection. */
const HANG_MS = 30_000;

describeRoot('SIGKILL of the proxy mid-stream', () => {
  const session = new PodSession({ tmpPrefix: 'aig-e2e-kill-', hosts: [OPENAI_HOST, PLAIN_HOST], keys: KEYS });
  beforeAll(() => session.start());
  afterAll(() => session.stop());

  const curlChat = (text: string): string[] => [
    CURL, '-sS', `https://${OPENAI_HOST}/v1/chat/completions`, '-H', 'content-type: application/json', '-H', `authorization: Bearer ${KEYS.openai}`,
    '-d', JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: text }] }),
  ];

  it('the app sees a broken stream, the pod sends nothing uncaptured meanwhile, and the restarted proxy serves at once', async () => {
    const proxy = await session.startProxy();
    const mark = session.fake.mark();
    // "slow" models make the fake provider stream for ~3 s
    const stream = session.pod.start(APP, { argv: [process.execPath, join(APPS_DIR, 'openai-chat.mjs'), 'stream', 'gpt-4o-slow', prompt('killed')] });
    const req = await session.fake.waitFor('the slow stream to start', mark, (x): x is RequestRecord => x.type === 'request');
    await session.fake.waitFor('the first events to be sent', mark, (x): x is StreamRecord => x.type === 'stream-start' && x.id === req.id);

    proxy.child.kill('SIGKILL');
    expect(await proxy.exited).toEqual({ code: null, signal: 'SIGKILL' });

    // The app's stream breaks: its SDK throws on the cut connection and the app exits with an error.
    let hung = false;
    const guard = setTimeout(() => {
      hung = true;
      stream.child.kill('SIGKILL');
    }, HANG_MS);
    const status = await stream.exited;
    clearTimeout(guard);
    expect(hung).toBe(false);
    expect(status.code).not.toBe(0);
    expect(stream.stdout).toBe(''); // it never printed a finished answer
    expect(stream.stderr).toMatch(/terminated|ECONNRESET|socket hang up|other side closed|Premature close|aborted/i);
    // and the provider's side of that stream was cut too: nothing kept it half open
    const end = await session.fake.waitFor('the provider to see the stream end', mark, (x): x is StreamRecord => x.type === 'stream-end' && x.id === req.id);
    expect(end.complete).toBe(false);

    // No proxy: an AI call is refused by the capture rule (REDIRECT to a closed port), never sent direct.
    const down = session.fake.mark();
    const refused = await session.pod.exec(APP, curlChat(prompt('while down')), { timeoutMs: 30_000 });
    expect(refused.code).toBe(7);
    expect(refused.stderr).toMatch(/Failed to connect/);
    expect(session.fake.since(down)).toEqual([]);

    // The restarted proxy (as the kubelet restarts a native sidecar) serves the very first request.
    await session.startProxy();
    const again = session.fake.mark();
    const text = prompt('after restart');
    const ok = await session.pod.exec(APP, curlChat(text), { timeoutMs: 30_000 });
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ choices: [{ message: { content: expect.stringContaining(text) as string } }] });
    expect(session.fake.requestsSince(again)).toHaveLength(1);
  });
});
