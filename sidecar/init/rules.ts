import type { CaptureSettings, PortRange } from './settings.js';

export type Family = 4 | 6;

export const OUTPUT_CHAIN = 'AIGRESS_OUTPUT';
export const REDIRECT_CHAIN = 'AIGRESS_REDIRECT';

/** The one rule we add to the built-in OUTPUT chain, in the form iptables-save prints it back. */
export const JUMP_RULE = `-A OUTPUT -p tcp ${comment('outbound TCP goes through aigress capture')} -j ${OUTPUT_CHAIN}`;
/**
 * How we add it: as the first rule of nat OUTPUT, so aigress sees the app's traffic before a service mesh's
 * chain (istio-init's ISTIO_OUTPUT, Linkerd's PROXY_INIT_OUTPUT) whichever init container ran first. A mesh
 * that runs after us appends its jump behind ours; one that ran before is overtaken.
 */
export const INSERT_JUMP_RULE = JUMP_RULE.replace(/^-A OUTPUT /, '-I OUTPUT 1 ');

const LOOPBACK: Record<Family, string> = { 4: '127.0.0.0/8', 6: '::1/128' };

// xt_multiport takes at most 15 ports per rule, a range counting as two.
const MULTIPORT_SLOTS = 15;

// Rules are written in the canonical order iptables-save prints them in (addresses, interface, protocol, matches,
// target), so what we render is byte-for-byte what the kernel reports afterwards.
function comment(text: string): string {
  return `-m comment --comment "aigress: ${text}"`;
}

function portChunks(ports: readonly PortRange[]): string[] {
  const chunks: string[] = [];
  let cur: string[] = [];
  let used = 0;
  for (const p of ports) {
    const cost = p.from === p.to ? 1 : 2;
    if (used + cost > MULTIPORT_SLOTS) {
      chunks.push(cur.join(','));
      cur = [];
      used = 0;
    }
    cur.push(p.from === p.to ? String(p.from) : `${p.from}:${p.to}`);
    used += cost;
  }
  if (cur.length > 0) chunks.push(cur.join(','));
  return chunks;
}

/**
 * The capture rules for one address family, as `iptables-restore --noflush` input for the nat table. Declaring
 * our two chains flushes and refills them; the jump from OUTPUT is inserted first in OUTPUT only when `jump` is
 * true (the caller leaves it out when exactly one is already first, so running twice leaves exactly one).
 * `deleteJumps` are OUTPUT rules as iptables-save printed them (`-A OUTPUT ...`) to remove in the same
 * transaction: duplicates, or a jump that another chain's rules overtook.
 * Pure and deterministic.
 */
export function renderRules(
  s: CaptureSettings,
  family: Family,
  opts: { jump?: boolean; deleteJumps?: readonly string[] } = {},
): string {
  const out = OUTPUT_CHAIN;
  const lines = [
    `# aigress capture rules, IPv${family}: outbound TCP to ports ${portChunks(s.includePorts).join(',')} -> :${s.capturePort}`,
    '*nat',
    `:${OUTPUT_CHAIN} - [0:0]`,
    `:${REDIRECT_CHAIN} - [0:0]`,
    `-A ${out} -m owner --uid-owner ${s.proxyUid} ${comment(`proxy uid ${s.proxyUid} is not captured`)} -j RETURN`,
    `-A ${out} -m owner --gid-owner ${s.proxyGid} ${comment(`proxy gid ${s.proxyGid} is not captured`)} -j RETURN`,
    ...s.excludeUids.map((uid) => `-A ${out} -m owner --uid-owner ${uid} ${comment(`mesh proxy uid ${uid} is not captured`)} -j RETURN`),
    `-A ${out} -o lo ${comment('loopback interface is not captured')} -j RETURN`,
    `-A ${out} -d ${LOOPBACK[family]} ${comment('loopback destination is not captured')} -j RETURN`,
  ];
  for (const ports of portChunks(s.excludePorts)) {
    lines.push(`-A ${out} -p tcp -m multiport --dports ${ports} ${comment('excluded port is not captured')} -j RETURN`);
  }
  for (const cidr of s.excludeCidrs) {
    if (cidr.family !== family) continue;
    lines.push(`-A ${out} -d ${cidr.text} ${comment('excluded cidr is not captured')} -j RETURN`);
  }
  for (const ports of portChunks(s.includePorts)) {
    lines.push(`-A ${out} -p tcp -m multiport --dports ${ports} ${comment('included port goes to the proxy')} -j ${REDIRECT_CHAIN}`);
  }
  lines.push(
    `-A ${REDIRECT_CHAIN} -p tcp ${comment(`redirect to the proxy capture port ${s.capturePort}`)} -j REDIRECT --to-ports ${s.capturePort}`,
  );
  for (const rule of opts.deleteJumps ?? []) lines.push(rule.replace(/^-A /, '-D '));
  if (opts.jump ?? true) lines.push(INSERT_JUMP_RULE);
  lines.push('COMMIT', '');
  return lines.join('\n');
}

/** The nat table's lines from iptables-save output (other tables, comments and blank lines dropped). */
function natLines(save: string): string[] {
  const out: string[] = [];
  let inNat = false;
  for (const raw of save.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('*')) inNat = line === '*nat';
    else if (line === 'COMMIT') inNat = false;
    else if (inNat && line !== '' && !line.startsWith('#')) out.push(line);
  }
  return out;
}

/** Current state of our rules in one family's nat table, read from iptables-save output. Pure. */
export interface CaptureState {
  /** OUTPUT rules that jump to our chain, as printed (`-A OUTPUT ... -j AIGRESS_OUTPUT`). */
  jumps: string[];
  chains: boolean;
  /** The first rule of nat OUTPUT is one of our jumps (nothing, a mesh's chain included, is ahead of it). */
  first: boolean;
}

export function readState(save: string): CaptureState {
  const lines = natLines(save);
  const isJump = (l: string): boolean => l.startsWith('-A OUTPUT ') && l.endsWith(` -j ${OUTPUT_CHAIN}`);
  const output = lines.filter((l) => l.startsWith('-A OUTPUT '));
  return {
    jumps: output.filter(isJump),
    chains: lines.some((l) => l.startsWith(`:${OUTPUT_CHAIN} `) || l.startsWith(`:${REDIRECT_CHAIN} `)),
    first: output.length > 0 && isJump(output[0]!),
  };
}

/**
 * Apply input for a table in `state`: refill our chains and leave exactly one jump, first in OUTPUT. One jump
 * already first stays (a re-run changes nothing there); otherwise every jump goes and one is inserted at the top.
 */
export function renderApply(s: CaptureSettings, family: Family, state: CaptureState): string {
  if (state.jumps.length === 1 && state.first) return renderRules(s, family, { jump: false });
  return renderRules(s, family, { jump: true, deleteJumps: state.jumps });
}

/**
 * `iptables-restore --noflush` input that removes every jump to our chain and then the chains themselves, or
 * undefined when there is nothing of ours to remove. Declaring the chains first empties them, so the
 * reference from AIGRESS_OUTPUT to AIGRESS_REDIRECT is gone before the deletes.
 */
export function renderCleanup(state: Pick<CaptureState, 'jumps' | 'chains'>): string | undefined {
  if (state.jumps.length === 0 && !state.chains) return undefined;
  return [
    '# aigress: remove capture rules',
    '*nat',
    `:${OUTPUT_CHAIN} - [0:0]`,
    `:${REDIRECT_CHAIN} - [0:0]`,
    ...state.jumps.map((j) => j.replace(/^-A /, '-D ')),
    `-X ${OUTPUT_CHAIN}`,
    `-X ${REDIRECT_CHAIN}`,
    'COMMIT',
    '',
  ].join('\n');
}
