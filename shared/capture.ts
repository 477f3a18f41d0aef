import { parseCidr } from './cidr.js';

// The capture grammar, written once: ports, port ranges (8000-8100), IPv4/IPv6 CIDRs or bare addresses and user
// ids, as the webhook reads them (config lists, `aigress.io/*-outbound-*` annotations) and as `aigress init`
// reads its flags. One parser on both sides, so a pod the webhook lets through never has an init container that
// refuses its own flags.

export interface PortRange {
  from: number;
  to: number;
}

/** Parses one `443` or `8000-8100`; a reason string when it is neither. */
export function parsePortItem(item: string): PortRange | string {
  const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(item);
  if (!m) return 'is not a port (1-65535) or a port range like 8000-8100';
  const from = Number(m[1]);
  const to = m[2] === undefined ? from : Number(m[2]);
  if (from < 1 || to > 65535) return 'is out of range (ports are 1-65535)';
  if (from > to) return 'is a range whose start is above its end';
  return { from, to };
}

/** Checks one CIDR (`10.0.0.0/8`, `fd00::/8`) or bare address; a reason string when malformed, else undefined. */
export function checkCidrItem(item: string): string | undefined {
  const c = parseCidr(item);
  if (typeof c !== 'string') return undefined;
  if (c.startsWith('not ')) return 'is not a CIDR (e.g. 10.0.0.0/8 or fd00::/8)';
  const v6 = item.slice(0, item.indexOf('/')).includes(':');
  return `has a bad prefix length (0-${v6 ? 128 : 32} for IPv${v6 ? 6 : 4})`;
}

/** Parses one user id (0-4294967294: 4294967295 is the kernel's "no user"); a reason string when it is not one. */
export function parseUidItem(item: string): number | string {
  if (!/^\d{1,10}$/.test(item) || Number(item) > 4294967294) return 'is not a user id (0-4294967294)';
  return Number(item);
}

export function formatPort(p: PortRange): string {
  return p.from === p.to ? String(p.from) : `${p.from}-${p.to}`;
}

/** Union of port lists, deduplicated and sorted, so the rendered flag is the same whatever the input order. */
export function mergePorts(...lists: PortRange[][]): PortRange[] {
  const byKey = new Map<string, PortRange>();
  for (const p of lists.flat()) byKey.set(formatPort(p), p);
  return [...byKey.values()].sort((a, b) => a.from - b.from || a.to - b.to);
}

/** Splits a comma-separated annotation value; blanks around items are ignored, an empty value is an empty list. */
export function splitList(value: string): string[] {
  if (value.trim() === '') return [];
  return value.split(',').map((s) => s.trim());
}
