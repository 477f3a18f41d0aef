import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { OPENAI_HOST, PLAIN_HOST } from './support/fake-provider.js';
import { metricSum } from './support/metrics.js';
import { CURL } from './support/paths.js';
import { APP, PodSession } from './support/pod-session.js';
import type { Background, RunResult } from './support/process.js';
import { describeRoot } from './support/require-root.js';

// Pass-through by name, checked against the original destination (issue 16): real capture (the init container's
// iptables rules), the proxy reading SO_ORIGINAL_DST, an unmodified curl as the app. The pod's resolver (and the
// proxy's, in the same pod) maps the hosts to the outside's IPv4 address only, so a connection the app sends to the
// outside's IPv6 address under the same name is one whose SNI (or Host) names a host that address is not.
// The connection still goes where the app sent it; the proxy counts and logs the mismatch.

const KEYS = { openai: 'sk-e2e-app-openai-0000', anthropic: 'sk-ant-e2e-app-0000' };
const METRIC = 'aigress_passthrough_address_checks_total';

describeRoot('pass-through by name: the original destination checked against the name\'s addresses', () => {
  const session = new PodSession({ tmpPrefix: 'aig-e2e-pt-', hosts: [OPENAI_HOST, PLAIN_HOST], keys: KEYS });
  let proxy: Background;

  const app = (argv: readonly string[]): Promise<RunResult> => session.pod.exec(APP, argv, { timeoutMs: 30_000 });
  const checks = async (): Promise<Record<string, number>> => {
    const m = await session.metrics();
    return Object.fromEntries(['match', 'mismatch', 'unresolved', 'unchecked'].map((result) => [result, metricSum(m, METRIC, { result })]));
  };
  /** Waits for the check, which runs beside the connection, to be counted. */
  const after = async (before: Record<string, number>, result: string): Promise<Record<string, number>> => {
    await session.waitMetric(METRIC, { result }, before[result]! + 1);
    return checks();
  };

  /** The proxy's log lines from `from` on that contain `text`, once there are any (it writes its log in batches). */
  const logLines = async (from: number, text: string): Promise<string[]> => {
    const deadline = Date.now() + 5_000;
    for (;;) {
      const lines = proxy.stdout.slice(from).split('\n').filter((l) => l.includes(text));
      if (lines.length > 0 || Date.now() > deadline) return lines;
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  beforeAll(async () => {
    await session.start();
    // No DNS server in the pod: names outside its hosts file fail at once (refused), not after resolver timeouts.
    writeFileSync(`/etc/netns/${session.net.pod}/resolv.conf`, 'nameserver 127.0.0.1\noptions attempts:1 timeout:1\n');
    proxy = await session.startProxy();
  });
  afterAll(() => session.stop());

  it('reads original destinations (the addon is loaded), and counts every result from zero', async () => {
    expect(await logLines(0, 'SO_ORIGINAL_DST available')).toHaveLength(1);
    expect(await checks()).toEqual({ match: 0, mismatch: 0, unresolved: 0, unchecked: 0 });
  });

  it('a name sent to one of its addresses is a match, over TLS and plain HTTP', async () => {
    const before = await checks();
    const mark = session.fake.mark();
    const tls = await app([CURL, '-sS', '--fail', '--cacert', session.pki.rootFile, `https://${PLAIN_HOST}/match`]);
    expect(tls.code, tls.stderr).toBe(0);
    await after(before, 'match');
    const plain = await app([CURL, '-sS', '--fail', `http://${PLAIN_HOST}/match-plain`]);
    expect(plain.code, plain.stderr).toBe(0);
    await session.waitMetric(METRIC, { result: 'match' }, before.match! + 2);
    expect(await checks()).toEqual({ ...before, match: before.match! + 2 });
    expect(session.fake.requestsSince(mark).map((r) => [r.transport, r.path, r.remoteAddress])).toEqual([
      ['https', '/match', session.net.podAddr],
      ['http', '/match-plain', session.net.podAddr],
    ]);
  });

  it('SNI or Host naming a host the dialled address is not: still sent where the app sent it, counted and logged', async () => {
    const before = await checks();
    const mark = session.fake.mark();
    const logBefore = proxy.stdout.length;
    const v6 = `[${session.net.outAddr6}]`;
    const tls = await app([CURL, '-sS', '--fail', '--cacert', session.pki.rootFile, '--resolve', `${PLAIN_HOST}:443:${v6}`, `https://${PLAIN_HOST}/spoofed`]);
    expect(tls.code, tls.stderr).toBe(0);
    await after(before, 'mismatch');
    const plain = await app([CURL, '-sS', '--fail', '--resolve', `${PLAIN_HOST}:80:${v6}`, `http://${PLAIN_HOST}/spoofed-plain`]);
    expect(plain.code, plain.stderr).toBe(0);
    await session.waitMetric(METRIC, { result: 'mismatch' }, before.mismatch! + 2);
    expect(await checks()).toEqual({ ...before, mismatch: before.mismatch! + 2 });
    // Dialled to the original (IPv6) address, not to a re-resolution of the name (which would be IPv4).
    expect(session.fake.requestsSince(mark).map((r) => [r.transport, r.path, r.sni, r.remoteAddress])).toEqual([
      ['https', '/spoofed', PLAIN_HOST, session.net.podAddr6],
      ['http', '/spoofed-plain', null, session.net.podAddr6],
    ]);
    const lines = await logLines(logBefore, 'do not include the one it connected to');
    // One line per host and result per minute; the metric counts them all.
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ host: PLAIN_HOST, target: `${session.net.outAddr6}:443`, resolved: [session.net.outAddr] });
  });

  it('a name the proxy cannot resolve is counted as unresolved, and still passed through', async () => {
    const before = await checks();
    const mark = session.fake.mark();
    const logBefore = proxy.stdout.length;
    const r = await app([CURL, '-sS', '-k', '--resolve', `unknown-name.example:443:${session.net.outAddr}`, 'https://unknown-name.example/unresolved']);
    await after(before, 'unresolved');
    expect(await checks()).toEqual({ ...before, unresolved: before.unresolved! + 1 });
    const reqs = session.fake.requestsSince(mark);
    expect(reqs.map((x) => [x.sni, x.path]), r.stderr).toEqual([['unknown-name.example', '/unresolved']]);
    const lines = await logLines(logBefore, 'does not resolve for the proxy');
    expect(lines.map((l) => JSON.parse(l) as unknown)).toEqual([expect.objectContaining({ host: 'unknown-name.example', target: `${session.net.outAddr}:443`, resolved: [] })]);
  });
});
