import { isIPv4, isIPv6 } from 'node:net';

// Ports and CIDRs of the capture settings, as config lists and as `aigress.io/*-outbound-*` annotations. What this
// accepts is what `aigress init` accepts (ports, port ranges like 8000-8100, IPv4/IPv6 CIDRs or bare addresses),
// so a pod the webhook lets through never has an init container that refuses its own flags.

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
  const slash = item.indexOf('/');
  const addr = slash < 0 ? item : item.slice(0, slash);
  const bits = isIPv4(addr) ? 32 : isIPv6(addr) ? 128 : 0;
  if (bits === 0) return 'is not a CIDR (e.g. 10.0.0.0/8 or fd00::/8)';
  if (slash >= 0) {
    const prefix = item.slice(slash + 1);
    if (!/^\d{1,3}$/.test(prefix) || Number(prefix) > bits) return `has a bad prefix length (0-${bits} for IPv${bits === 32 ? 4 : 6})`;
  }
  return undefined;
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
