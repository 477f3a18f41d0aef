import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { INSERT_JUMP_RULE, JUMP_RULE, readState, renderApply, renderCleanup, renderRules } from '../../../sidecar/init/rules.js';
import { parseInitFlags } from '../../../sidecar/init/settings.js';

// Real `iptables-nft-save` output from a namespace where init ran and someone appended a second jump; the filter
// table has a decoy chain of the same name with a jump to it, which must not count.
const duplicateSave = readFileSync(new URL('../../fixtures/init/save-duplicate-jump.txt', import.meta.url), 'utf8');
const settings = parseInitFlags({}).capture;

describe('readState', () => {
  it('finds our chains and each jump in the nat table only', () => {
    const s = readState(duplicateSave);
    expect(s.chains).toBe(true);
    expect(s.jumps).toEqual([JUMP_RULE, JUMP_RULE]);
  });

  it('sees nothing in a fresh namespace', () => {
    expect(readState('')).toEqual({ jumps: [], chains: false, first: false });
    expect(readState('*nat\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -d 10.0.0.1/32 -j RETURN\nCOMMIT\n')).toEqual({ jumps: [], chains: false, first: false });
  });

  it('reads back exactly the rules it renders (rendered text is in iptables-save form)', () => {
    const rendered = renderRules(settings, 4);
    // the inserted jump (`-I OUTPUT 1 …`) reads back as an appended one (`-A OUTPUT …`)
    const rulesOf = (t: string): string[] =>
      t
        .split('\n')
        .map((l) => l.replace(/^-I OUTPUT 1 /, '-A OUTPUT '))
        .filter((l) => l.startsWith('-A '))
        .sort();
    const savedNat = duplicateSave.slice(duplicateSave.indexOf('*nat'));
    // the fixture's nat table = our rendered rules + one extra jump + one foreign OUTPUT rule
    const expected = [...rulesOf(rendered), JUMP_RULE, '-A OUTPUT -d 10.9.9.9/32 -j RETURN'].sort();
    expect(rulesOf(savedNat)).toEqual(expected);
  });
});

describe('renderApply', () => {
  it('inserts the jump first in OUTPUT on a fresh namespace', () => {
    const text = renderApply(settings, 4, readState(''));
    expect(text.split('\n').filter((l) => l === INSERT_JUMP_RULE)).toHaveLength(1);
    expect(INSERT_JUMP_RULE.startsWith('-I OUTPUT 1 ')).toBe(true);
    expect(text).not.toContain('-D OUTPUT');
  });

  it('refills the chains without a second jump when exactly one is there and first', () => {
    const text = renderApply(settings, 4, { jumps: [JUMP_RULE], chains: true, first: true });
    expect(text).not.toContain('OUTPUT 1');
    expect(text).not.toContain('-D OUTPUT');
    expect(text).toContain(':AIGRESS_OUTPUT - [0:0]');
  });

  it('deletes duplicate jumps and inserts one first, so exactly one remains', () => {
    const text = renderApply(settings, 4, readState(duplicateSave));
    const lines = text.split('\n');
    expect(lines.filter((l) => l.startsWith('-D OUTPUT '))).toEqual([JUMP_RULE.replace('-A ', '-D '), JUMP_RULE.replace('-A ', '-D ')]);
    expect(lines.filter((l) => l === INSERT_JUMP_RULE)).toHaveLength(1);
  });

  it('moves its jump ahead of a mesh chain that overtook it (istio-init ran after with -I)', () => {
    const save = ['*nat', ':OUTPUT ACCEPT [0:0]', ':ISTIO_OUTPUT - [0:0]', '-A OUTPUT -p tcp -j ISTIO_OUTPUT', JUMP_RULE, 'COMMIT', ''].join('\n');
    const state = readState(save);
    expect(state).toEqual({ jumps: [JUMP_RULE], chains: false, first: false });
    const lines = renderApply(settings, 4, state).split('\n');
    expect(lines).toContain(JUMP_RULE.replace('-A ', '-D '));
    expect(lines).toContain(INSERT_JUMP_RULE);
  });
});

describe('renderCleanup', () => {
  it('has nothing to do when nothing of ours is there', () => {
    expect(renderCleanup({ jumps: [], chains: false })).toBeUndefined();
  });

  it('removes a foreign-looking jump exactly as iptables-save printed it', () => {
    const jump = '-A OUTPUT -j AIGRESS_OUTPUT';
    const text = renderCleanup({ jumps: [jump], chains: true })!;
    expect(text).toContain('\n-D OUTPUT -j AIGRESS_OUTPUT\n');
    // chains are declared (emptied) before they are deleted
    expect(text.indexOf(':AIGRESS_REDIRECT')).toBeLessThan(text.indexOf('-X AIGRESS_REDIRECT'));
  });

  it('deletes leftover chains even when the jump is already gone', () => {
    const text = renderCleanup({ jumps: [], chains: true })!;
    expect(text).toContain('-X AIGRESS_OUTPUT');
    expect(text).not.toContain('-D OUTPUT');
  });
});
