import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestPki, startTestProxy, type TestPki, type TestProxy } from '../unit/proxy/support.js';
import { FLAG, FRAME, frame, hpack, RawH2, requestBlock } from './h2-raw.js';
import { type CountingProvider, countingProvider, h2Result, h2Session } from './support.js';

// HTTP/2 from the app, as an attacker writes it: CONTINUATION floods (CVE-2024-27316 class), SETTINGS and PING
// floods (CVE-2019-9512/9515), an HPACK bomb (a small block that decodes to a huge header list) and rapid reset
// (CVE-2023-44487). Each must end bounded, with the session closed (GOAWAY) or the stream reset, and an honest
// client on another session served. CPU time and RSS during each are printed (docs/reliability.md states them);
// they are measured in this process, which holds the proxy, the attacker and the fake provider alike.

const OPENAI = 'api.openai.com';
let pki: TestPki;
let proxy: TestProxy;
let provider: CountingProvider;

beforeAll(async () => {
  pki = await createTestPki();
  provider = await countingProvider(pki, OPENAI);
  proxy = await startTestProxy(pki, { resolve: { [OPENAI]: { host: '127.0.0.1', port: provider.port } } });
  await proxy.handle.ready;
});
afterAll(async () => {
  await proxy.handle.close();
  await provider.close();
});

interface Cost {
  cpuMs: number;
  rssBeforeMb: number;
  rssPeakMb: number;
  rssAfterMb: number;
}

async function measured<T>(what: string, run: () => Promise<T>): Promise<{ result: T; cost: Cost }> {
  const mb = (n: number): number => Math.round(n / 1e5) / 10;
  const rss0 = process.memoryUsage().rss;
  let peak = rss0;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 10);
  const cpu0 = process.cpuUsage();
  const result = await run();
  const cpu = process.cpuUsage(cpu0);
  clearInterval(sampler);
  peak = Math.max(peak, process.memoryUsage().rss);
  const cost = { cpuMs: Math.round((cpu.user + cpu.system) / 1000), rssBeforeMb: mb(rss0), rssPeakMb: mb(peak), rssAfterMb: mb(process.memoryUsage().rss) };
  console.log(`${what}: ${JSON.stringify(result)} ${JSON.stringify(cost)}`);
  // Not a figure to hold it to (GC decides), only a bound against growth without end: the worst seen is +40 MB.
  expect(cost.rssPeakMb - cost.rssBeforeMb).toBeLessThan(200);
  return { result, cost };
}

async function honestServed(): Promise<number | undefined> {
  const s = await h2Session(proxy.handle.capturePort, OPENAI, pki.caPem);
  try {
    return (await h2Result(s.request({ ':method': 'GET', ':path': '/v1/models' }))).status;
  } finally {
    s.close();
  }
}

const connect = (): Promise<RawH2> => RawH2.connect(proxy.handle.capturePort, OPENAI, pki.caPem);

/** After the flood: read what the server said, and give it a moment to end the connection. */
async function outcome(c: RawH2, sent: number): Promise<{ sent: number; closed: boolean; goaway?: number; resets: number }> {
  c.socket.resume();
  const closed = await c.closedWithin(2_000);
  const r = { sent, closed, ...(c.received.goaway && { goaway: c.received.goaway.code }), resets: c.received.rst.size };
  c.close();
  return r;
}

describe('HTTP/2 floods are cut off', () => {
  it('CONTINUATION flood, each frame carrying a 1 KB header field: the session is closed', async () => {
    const c = await connect();
    const { result } = await measured('continuation (1 KB fields)', async () => {
      c.socket.write(frame(FRAME.HEADERS, 0, 1, requestBlock(OPENAI)));
      const field = hpack.literal('x-flood', 'a'.repeat(1_000));
      const sent = await c.flood((i) => (i < 100_000 ? frame(FRAME.CONTINUATION, 0, 1, field) : undefined));
      return outcome(c, sent);
    });
    expect(result.closed).toBe(true);
    expect(result.sent).toBeLessThan(100_000);
    expect(await honestServed()).toBe(200);
  });

  it('CONTINUATION flood of empty frames: the session is closed', async () => {
    const c = await connect();
    const { result } = await measured('continuation (empty)', async () => {
      c.socket.write(frame(FRAME.HEADERS, 0, 1, requestBlock(OPENAI)));
      const empty = frame(FRAME.CONTINUATION, 0, 1);
      const sent = await c.flood((i) => (i < 1_000_000 ? empty : undefined));
      return outcome(c, sent);
    });
    expect(result.closed).toBe(true);
    expect(result.sent).toBeLessThan(1_000_000);
    expect(await honestServed()).toBe(200);
  });

  const settings = frame(FRAME.SETTINGS, 0, 0, Buffer.from([0x00, 0x04, 0x00, 0x00, 0xff, 0xff]));
  const ping = frame(FRAME.PING, 0, 0, Buffer.alloc(8, 7));
  it.each([
    ['SETTINGS', 'reads nothing', settings, false],
    ['SETTINGS', 'reads the ACKs', settings, true],
    ['PING', 'reads nothing', ping, false],
    ['PING', 'reads the ACKs', ping, true],
  ])('%s flood from a client that %s: the session is ended', async (what, _how, f, reads) => {
    const c = await connect();
    const { result } = await measured(`${what} flood${reads ? ', reading' : ', not reading'}`, async () => {
      if (!reads) c.socket.pause(); // the ACKs pile up on the proxy's side
      const sent = await c.flood((i) => (i < 1_000_000 ? f : undefined));
      return outcome(c, sent);
    });
    expect(result.closed).toBe(true);
    expect(result.sent).toBeLessThan(1_000_000);
    // A reading PING flooder is cut by the proxy's budget (ENHANCE_YOUR_CALM); the others by nghttp2 or the budget.
    if (what === 'PING' && reads) expect(result.goaway).toBe(0xb);
    // A reading PING flooder is cut by the proxy's budget (ENHANCE_YOUR_CALM); the others by nghttp2 or the budget.
    if (what === 'PING' && reads) expect(result.goaway).toBe(0xb);
    expect(await honestServed()).toBe(200);
  });

  it('HPACK bomb: a 4 KB table entry referenced 16,000 times per block (64 MB decoded) on 50 streams: each refused', async () => {
    const before = provider.reached;
    const c = await connect();
    const { result } = await measured('hpack bomb', async () => {
      const refs = Buffer.alloc(16_000, 0xbe); // dynamic entry 62, one byte each
      let sent = 0;
      for (let i = 0; i < 50 && c.isOpen; i++) {
        const block = Buffer.concat([requestBlock(OPENAI), i === 0 ? hpack.indexed('x-bomb', 'b'.repeat(4_000)) : Buffer.alloc(0), refs]);
        const id = 2 * i + 1;
        const frames: Buffer[] = [];
        for (let off = 0; off < block.length; off += 16_384) {
          const last = off + 16_384 >= block.length;
          frames.push(frame(off === 0 ? FRAME.HEADERS : FRAME.CONTINUATION, (last ? FLAG.END_HEADERS : 0) | (off === 0 ? FLAG.END_STREAM : 0), id, block.subarray(off, off + 16_384)));
        }
        c.socket.write(Buffer.concat(frames));
        sent++;
      }
      await new Promise((r) => setTimeout(r, 500));
      return { ...(await outcome(c, sent)), answered: c.received.answered.size };
    });
    // Every bomb was refused (its stream reset, or the session closed); none became a request.
    expect(result.answered).toBe(0);
    expect(result.resets > 0 || result.closed).toBe(true);
    expect(provider.reached).toBe(before);
    expect(await honestServed()).toBe(200);
  });

  it('rapid reset: 20,000 requests each cancelled at once: the session is ended, none reach the provider', async () => {
    const before = provider.reached;
    const c = await connect();
    const { result } = await measured('rapid reset', async () => {
      const block = requestBlock(OPENAI);
      const cancel = Buffer.from([0, 0, 0, 8]);
      const sent = await c.flood((i) =>
        i < 20_000 ? Buffer.concat([frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 2 * i + 1, block), frame(FRAME.RST_STREAM, 0, 2 * i + 1, cancel)]) : undefined,
      );
      return { ...(await outcome(c, sent)), reachedProvider: provider.reached - before };
    });
    expect(result.closed).toBe(true);
    expect(result.goaway).toBe(0xb); // ENHANCE_YOUR_CALM: the proxy's reset budget, not nghttp2's GOAWAY-and-linger
    expect(result.sent).toBeLessThan(20_000);
    expect(result.reachedProvider).toBe(0);
    expect(await honestServed()).toBe(200);
  });
});
