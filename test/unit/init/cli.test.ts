import { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { UserError } from '../../../shared/errors.js';
import { renderDryRun } from '../../../sidecar/init/apply.js';
import { registerInit } from '../../../sidecar/init/cli.js';
import { parseInitFlags } from '../../../sidecar/init/settings.js';

const golden = (name: string): string => readFileSync(new URL(`../../fixtures/init/${name}`, import.meta.url), 'utf8');

async function runCli(args: string[]): Promise<{ out: string; err?: unknown }> {
  const program = new Command('aigress').exitOverride();
  registerInit(program);
  for (const c of program.commands) c.exitOverride();
  let out = '';
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    out += String(chunk);
    return true;
  });
  try {
    await program.parseAsync(['init', ...args], { from: 'user' });
    return { out };
  } catch (err) {
    return { out, err };
  } finally {
    spy.mockRestore();
  }
}

afterEach(() => vi.restoreAllMocks());

describe('aigress init (CLI wiring)', () => {
  it('--dry-run prints both families\' rules for the given flags and runs no iptables binary', async () => {
    const { out, err } = await runCli(['--dry-run', '--ipv6', 'true', '--iptables-mode', 'nft', '--exclude-outbound-cidrs', '10.96.0.1/12,169.254.169.254']);
    expect(err).toBeUndefined();
    expect(out).toContain('# input for: iptables-nft-restore --noflush');
    expect(out).toContain('# input for: ip6tables-nft-restore --noflush');
    // each family's section is exactly its golden file
    expect(out).toContain(golden('exclude-cidrs-v4.v4.rules').trimEnd());
    expect(out).toContain(golden('exclude-cidrs-v4.v6.rules').trimEnd());
  });

  it('--dry-run --cleanup prints the removal, IPv4 only with --ipv6 false', async () => {
    const { out } = await runCli(['--dry-run', '--cleanup', '--ipv6', 'false', '--iptables-mode', 'legacy']);
    expect(out).toContain('# input for: iptables-legacy-restore --noflush');
    expect(out).not.toContain('ip6tables');
    expect(out).toContain('-X AIGRESS_OUTPUT');
    expect(out).not.toContain('-A AIGRESS_OUTPUT');
  });

  it.each([
    [['--capture-port', 'abc'], '--capture-port "abc"'],
    [['--exclude-outbound-cidrs', '10.0.0.0/40'], '--exclude-outbound-cidrs "10.0.0.0/40"'],
    [['--iptables-mode', 'xtables'], '--iptables-mode "xtables"'],
  ])('%j is a usage error (exit 2) naming flag and value', async (args, text) => {
    const { err } = await runCli([...args, '--dry-run']);
    expect(err).toBeInstanceOf(UserError);
    expect((err as UserError).exitCode).toBe(2);
    expect((err as UserError).message).toContain(text);
  });

  it('every flag of the contract has help text', () => {
    const program = new Command('aigress');
    registerInit(program);
    const help = program.commands[0]!.helpInformation();
    for (const flag of [
      '--proxy-uid',
      '--proxy-gid',
      '--capture-port',
      '--include-outbound-ports',
      '--exclude-outbound-ports',
      '--exclude-outbound-cidrs',
      '--ipv6',
      '--iptables-mode',
      '--dry-run',
      '--cleanup',
    ]) {
      expect(help).toMatch(new RegExp(`${flag}\\b[^\\n]*\\s{2,}\\w`));
    }
  });
});

describe('renderDryRun', () => {
  it('names the backend it will detect at apply time in auto mode', () => {
    const text = renderDryRun(parseInitFlags({}), { on: false, why: 'test' });
    expect(text).toContain('# iptables mode: auto');
    expect(text).toContain('# input for: iptables-{legacy,nft}-restore');
    expect(text).toContain('# IPv6: off (test)');
    expect(text).toContain(golden('defaults.v4.rules').trimEnd());
  });
});
