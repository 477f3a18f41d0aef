import { spawn } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import type { Logger } from '../../shared/log.js';
import { UserError } from '../../shared/errors.js';
import { binary, detectMode, type Detection, type SaveResult } from './mode.js';
import { JUMP_RULE, readState, renderApply, renderCleanup, type Family } from './rules.js';
import type { InitOptions, IptablesMode } from './settings.js';

// The thin edge around the pure rules: runs the iptables binaries of the chosen backend, one atomic
// `*-restore --noflush` per address family.

// The xtables lock is host-wide, not per network namespace: wait for it rather than fail when another
// pod on the node is writing rules at the same moment.
const RESTORE_ARGS = ['--noflush', '--wait=10'];

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

function run(bin: string, args: readonly string[], input?: string): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e: NodeJS.ErrnoException) => {
      reject(
        e.code === 'ENOENT'
          ? new UserError(`${bin} not found on PATH (is the iptables package installed?)`)
          : new UserError(`${bin}: cannot start: ${e.message}`),
      );
    });
    child.on('close', (code, signal) => {
      resolve({ code: code ?? (signal ? 128 : 1), stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
    });
    // A binary that dies before reading its input would otherwise surface as an unhandled EPIPE.
    child.stdin.on('error', () => undefined);
    child.stdin.end(input ?? '');
  });
}

function firstLine(text: string): string {
  return text.split('\n').find((l) => l.trim() !== '')?.trim() ?? '(no output)';
}

async function mustRun(bin: string, args: readonly string[], input?: string): Promise<string> {
  const r = await run(bin, args, input);
  if (r.code !== 0) throw new UserError(`${[bin, ...args].join(' ')} failed (exit ${r.code}): ${firstLine(r.stderr)}`);
  return r.stdout;
}

async function trySave(bin: string): Promise<SaveResult> {
  try {
    const r = await run(bin, []);
    return r.code === 0 ? { ok: true, text: r.stdout } : { ok: false, reason: `${bin} exit ${r.code}: ${firstLine(r.stderr)}` };
  } catch (err) {
    return { ok: false, reason: (err as Error).message };
  }
}

function onPath(bin: string): boolean {
  return (process.env.PATH ?? '').split(delimiter).some((dir) => {
    try {
      accessSync(join(dir, bin), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

async function resolveMode(mode: InitOptions['mode']): Promise<Detection> {
  if (mode !== 'auto') return { mode, why: 'forced by --iptables-mode' };
  return detectMode(await trySave('iptables-legacy-save'), await trySave('iptables-nft-save'));
}

/** `auto`: the kernel has IPv6 and the backend's ip6tables-restore is installed (any backend's when not yet known). */
function ipv6Enabled(setting: InitOptions['ipv6'], mode: IptablesMode | undefined): { on: boolean; why: string } {
  if (setting !== 'auto') return { on: setting === 'on', why: 'set by --ipv6' };
  if (!existsSync('/proc/net/if_inet6')) return { on: false, why: 'kernel has no IPv6 (/proc/net/if_inet6 missing)' };
  const candidates = mode ? [binary(mode, 6, 'restore')] : [binary('nft', 6, 'restore'), binary('legacy', 6, 'restore')];
  if (!candidates.some(onPath)) return { on: false, why: `${candidates.join(' / ')} not on PATH` };
  return { on: true, why: 'kernel has IPv6' };
}

/** `--dry-run`: print what would be fed to iptables-restore; run nothing, change nothing. */
export function renderDryRun(opts: InitOptions, ipv6: { on: boolean; why: string }): string {
  const families: Family[] = ipv6.on ? [4, 6] : [4];
  const modeText = opts.mode === 'auto' ? 'auto (legacy or nft, detected from this namespace when applied)' : opts.mode;
  const parts = [
    `# aigress init --dry-run${opts.cleanup ? ' --cleanup' : ''}: nothing is changed`,
    `# iptables mode: ${modeText}`,
    `# IPv6: ${ipv6.on ? 'on' : 'off'} (${ipv6.why})`,
  ];
  for (const family of families) {
    const bin = opts.mode === 'auto' ? binary('nft', family, 'restore').replace('-nft-', '-{legacy,nft}-') : binary(opts.mode, family, 'restore');
    parts.push(`# input for: ${bin} ${RESTORE_ARGS.join(' ')}`);
    // A dry run cannot read the tables (that needs root), so cleanup shows the removal of a fresh install.
    const text = opts.cleanup ? renderCleanup({ jumps: [JUMP_RULE], chains: true }) : renderApply(opts.capture, family, { jumps: [], chains: false, first: false });
    parts.push((text ?? '').trimEnd());
  }
  return `${parts.join('\n')}\n`;
}

/** Installs (or with `cleanup`, removes) the capture rules for IPv4 and, when enabled, IPv6. */
export async function runInit(opts: InitOptions, log: Logger, stdout: NodeJS.WritableStream): Promise<void> {
  if (opts.dryRun) {
    stdout.write(renderDryRun(opts, ipv6Enabled(opts.ipv6, opts.mode === 'auto' ? undefined : opts.mode)));
    return;
  }
  const detection = await resolveMode(opts.mode);
  const ipv6 = ipv6Enabled(opts.ipv6, detection.mode);
  log.info({ mode: detection.mode, reason: detection.why, ipv6: ipv6.on, ipv6Reason: ipv6.why }, 'iptables backend chosen');
  const families: Family[] = ipv6.on ? [4, 6] : [4];
  for (const family of families) {
    const save = binary(detection.mode, family, 'save');
    const restore = binary(detection.mode, family, 'restore');
    const state = readState(await mustRun(save, ['-t', 'nat']));
    if (opts.cleanup) {
      const text = renderCleanup(state);
      if (text) await mustRun(restore, RESTORE_ARGS, text);
      log.info({ family: `IPv${family}`, binary: restore, removed: text !== undefined }, 'capture rules removed');
      continue;
    }
    await mustRun(restore, RESTORE_ARGS, renderApply(opts.capture, family, state));
    log.info(
      {
        family: `IPv${family}`,
        binary: restore,
        jumpAdded: state.jumps.length === 0,
        jumpMovedFirst: state.jumps.length > 0 && !(state.jumps.length === 1 && state.first),
        duplicateJumpsRemoved: Math.max(0, state.jumps.length - 1),
      },
      'capture rules applied',
    );
  }
}
