import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { JUMP_RULE, readState, renderApply, renderCleanup, renderRules } from '../../../sidecar/init/rules.js';
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
    expect(readState('')).toEqual({ jumps: [], chains: false });
    expect(readState('*nat\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -d 10.0.0.1/32 -j RETURN\nCOMMIT\n')).toEqual({ jumps: [], chains: false });
  });

  it('reads back exactly the rules it renders (rendered text is in iptables-save form)', () => {
    const rendered = renderRules(settings, 4);
    const rulesOf = (t: string): string[] => t.split('\n').filter((l) => l.startsWith('-A ')).sort();
    const savedNat = duplicateSave.slice(duplicateSave.indexOf('*nat'));
    // the fixture's nat table = our rendered rules + one extra jump + one foreign OUTPUT rule
    const expected = [...rulesOf(rendered), JUMP_RULE, '-A OUTPUT -d 10.9.9.9/32 -j RETURN'].sort();
    expect(rulesOf(savedNat)).toEqual(expected);
  });
});

describe('renderApply', () => {
  it('adds the jump on a fresh namespace', () => {
    const text = renderApply(settings, 4, readState(''));
    expect(text.split('\n').filter((l) => l === JUMP_RULE)).toHaveLength(1);
    expect(text).not.toContain('-D OUTPUT');
  });

  it('refills the chains without a second jump when one is there', () => {
    const text = renderApply(settings, 4, { jumps: [JUMP_RULE], chains: true });
    expect(text).not.toContain(JUMP_RULE);
    expect(text).not.toContain('-D OUTPUT');
    expect(text).toContain(':AIGRESS_OUTPUT - [0:0]');
  });

  it('deletes duplicate jumps so exactly one remains', () => {
    const text = renderApply(settings, 4, readState(duplicateSave));
    const lines = text.split('\n');
    expect(lines.filter((l) => l.startsWith('-D OUTPUT '))).toEqual([JUMP_RULE.replace('-A ', '-D ')]);
    expect(lines).not.toContain(JUMP_RULE);
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
