// A real redis-server for the shared-budget tests, on a free loopback port in a temp dir, started and stopped
// (and restarted, for the outage tests) by the test. Skips with the reason when the binary is missing;
// AIGRESS_REDIS_REQUIRED=1 (set by .ci/run) turns that skip into a failure.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe } from 'vitest';

export function redisAvailable(): { ok: true } | { ok: false; reason: string } {
  const r = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return { ok: false, reason: 'redis-server is not installed (apt-get install redis-server)' };
  return { ok: true };
}

/** `describe` that needs redis-server: skips with the reason, or fails when AIGRESS_REDIS_REQUIRED=1. */
export function describeRedis(name: string, fn: () => void): void {
  const a = redisAvailable();
  if (a.ok) {
    describe(name, fn);
    return;
  }
  if (process.env.AIGRESS_REDIS_REQUIRED === '1') {
    describe(name, () => {
      throw new Error(`"${name}" needs redis-server and AIGRESS_REDIS_REQUIRED=1: ${a.reason}`);
    });
    return;
  }
  console.warn(`[skip] ${name}: ${a.reason}`);
  describe.skip(`${name} (skipped: ${a.reason})`, fn);
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

async function waitListening(port: number, ms = 5_000): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    const ok = await new Promise<boolean>((resolve) => {
      const c = connect(port, '127.0.0.1');
      c.once('connect', () => {
        c.destroy();
        resolve(true);
      });
      c.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`redis-server did not listen on ${port}`);
}

export interface RedisServer {
  readonly url: string;
  readonly port: number;
  stop(): Promise<void>;
  /** Starts it again on the same port (without persistence: an empty store, as after a crash). */
  start(): Promise<void>;
  close(): Promise<void>;
}

export async function startRedis(extra: string[] = []): Promise<RedisServer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'aigress-redis-'));
  let proc: ChildProcess | undefined;
  const start = async (): Promise<void> => {
    proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...extra], { stdio: 'ignore' });
    await waitListening(port);
  };
  const stop = async (): Promise<void> => {
    const p = proc;
    proc = undefined;
    if (!p || p.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      p.once('exit', () => resolve());
      p.kill('SIGKILL');
    });
  };
  await start();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    stop,
    start,
    async close() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
