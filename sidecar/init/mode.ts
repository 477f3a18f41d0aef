import { UserError } from '../../shared/errors.js';
import { OUTPUT_CHAIN, REDIRECT_CHAIN, type Family } from './rules.js';
import type { IptablesMode } from './settings.js';

/** What one `iptables-{legacy,nft}-save` run gave: its output, or why it could not be used. */
export type SaveResult = { ok: true; text: string } | { ok: false; reason: string };

export interface Detection {
  mode: IptablesMode;
  why: string;
}

function ruleCount(save: string): number {
  return save.split('\n').filter((l) => l.startsWith('-A ')).length;
}

function hasOurChains(save: string): boolean {
  return save.split('\n').some((l) => l.startsWith(`:${OUTPUT_CHAIN} `) || l.startsWith(`:${REDIRECT_CHAIN} `));
}

/**
 * Picks the iptables backend the way the node already uses it, from what each backend's save command shows in
 * this network namespace. Our own chains decide first (a second run must land where the first did), then
 * whichever backend has rules (the more rules wins if both do), else nft, the default on current distributions.
 * A backend whose save command failed is never picked while the other works. Pure.
 */
export function detectMode(legacy: SaveResult, nft: SaveResult): Detection {
  if (!legacy.ok && !nft.ok) {
    throw new UserError(`neither iptables backend works here: legacy: ${legacy.reason}; nft: ${nft.reason}`);
  }
  if (!legacy.ok) return { mode: 'nft', why: `iptables-legacy unusable (${legacy.reason})` };
  if (!nft.ok) return { mode: 'legacy', why: `iptables-nft unusable (${nft.reason})` };
  const ours = { legacy: hasOurChains(legacy.text), nft: hasOurChains(nft.text) };
  if (ours.legacy !== ours.nft) return { mode: ours.legacy ? 'legacy' : 'nft', why: 'aigress chains already there' };
  const n = { legacy: ruleCount(legacy.text), nft: ruleCount(nft.text) };
  if (n.legacy === 0 && n.nft === 0) return { mode: 'nft', why: 'no rules in either backend, nft is the default' };
  const mode = n.legacy > n.nft ? 'legacy' : 'nft';
  return { mode, why: `${n.legacy} legacy rules, ${n.nft} nft rules` };
}

/** The binary that reads or writes rules for a backend and address family, e.g. `ip6tables-nft-restore`. */
export function binary(mode: IptablesMode, family: Family, action: 'save' | 'restore'): string {
  return `${family === 6 ? 'ip6tables' : 'iptables'}-${mode}-${action}`;
}
