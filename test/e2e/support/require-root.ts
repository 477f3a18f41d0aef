import { execFileSync } from 'node:child_process';
import { describe } from 'vitest';

// e2e tests need root, `ip netns` and iptables. Where they cannot run they skip with the reason printed;
// CI sets AIGRESS_E2E_REQUIRED=1, which turns that skip into a failure (a skipped e2e suite proves nothing).

export type Availability = { ok: true } | { ok: false; reason: string };

let cached: Availability | undefined;

export function netnsAvailable(): Availability {
  if (cached) return cached;
  cached = probe();
  return cached;
}

function probe(): Availability {
  if (process.platform !== 'linux') return { ok: false, reason: `network namespaces need Linux (this is ${process.platform})` };
  if (process.getuid?.() !== 0) return { ok: false, reason: 'not running as root (ip netns and iptables need it)' };
  for (const [bin, args] of [
    ['ip', ['netns', 'list']],
    ['iptables-restore', ['--version']],
  ] as const) {
    try {
      execFileSync(bin, args, { stdio: 'pipe' });
    } catch (err) {
      return { ok: false, reason: `${bin} ${args.join(' ')} failed: ${(err as Error).message.split('\n')[0]}` };
    }
  }
  return { ok: true };
}

/** `describe` that runs only where network namespaces work; skips with the reason, or fails under CI. */
export function describeRoot(name: string, fn: () => void): void {
  const a = netnsAvailable();
  if (a.ok) {
    describe(name, fn);
    return;
  }
  if (process.env.AIGRESS_E2E_REQUIRED === '1') {
    describe(name, () => {
      throw new Error(`e2e suite "${name}" cannot run here and AIGRESS_E2E_REQUIRED=1: ${a.reason}`);
    });
    return;
  }
  console.warn(`[skip] ${name}: ${a.reason}`);
  describe.skip(`${name} (skipped: ${a.reason})`, fn);
}
