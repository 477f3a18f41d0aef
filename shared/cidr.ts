import { isIPv4, isIPv6 } from 'node:net';

/** An address block in the canonical form iptables-save prints (network address, explicit prefix). */
export interface Cidr {
  family: 4 | 6;
  text: string;
}

/**
 * Parses `10.0.0.0/8`, `fd00::/8` or a bare address (taken as /32 or /128). Host bits are cleared, as the kernel
 * does, so the rendered rule is the one iptables-save shows afterwards. Returns a reason string when malformed.
 */
export function parseCidr(input: string): Cidr | string {
  const slash = input.indexOf('/');
  const addr = slash < 0 ? input : input.slice(0, slash);
  const prefixText = slash < 0 ? undefined : input.slice(slash + 1);
  const family = isIPv4(addr) ? 4 : isIPv6(addr) ? 6 : 0;
  if (family === 0) return 'not an IPv4 or IPv6 address';
  const bits = family === 4 ? 32 : 128;
  let prefix = bits;
  if (prefixText !== undefined) {
    if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > bits) return `prefix length must be 0-${bits}`;
    prefix = Number(prefixText);
  }
  const bytes = family === 4 ? addr.split('.').map(Number) : ipv6Bytes(addr);
  const masked = bytes.map((b, i) => b & byteMask(prefix - i * 8));
  return { family, text: `${family === 4 ? masked.join('.') : formatIpv6(masked)}/${prefix}` };
}

function byteMask(bitsLeft: number): number {
  if (bitsLeft >= 8) return 0xff;
  if (bitsLeft <= 0) return 0;
  return (0xff << (8 - bitsLeft)) & 0xff;
}

// Input is already known valid (net.isIPv6). A dotted IPv4 tail stands for the last two groups.
function ipv6Bytes(addr: string): number[] {
  let text = addr.split('%')[0] ?? addr;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4?.[1]) {
    const [a, b, c, d] = v4[1].split('.').map(Number) as [number, number, number, number];
    text = `${text.slice(0, -v4[1].length)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const parse = (s: string): number[] => (s === '' ? [] : s.split(':').map((g) => parseInt(g, 16)));
  const hi = parse(head);
  const lo = tail === undefined ? [] : parse(tail);
  const groups = [...hi, ...Array<number>(8 - hi.length - lo.length).fill(0), ...lo];
  return groups.flatMap((g) => [g >> 8, g & 0xff]);
}

// RFC 5952 form, which is what glibc's inet_ntop (and so iptables-save) prints: lower case, the longest run of
// two or more zero groups (the first one on a tie) shortened to `::`.
function formatIpv6(bytes: number[]): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0));
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestLen < 2) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}
