import { CAPTURE_PORT, DEFAULT_INCLUDE_PORTS, PROXY_GID, PROXY_UID } from '../../shared/constants.js';
import { UserError } from '../../shared/errors.js';
import { parsePortItem, parseUidItem, type PortRange } from '../../shared/capture.js';
import { parseCidr, type Cidr } from '../../shared/cidr.js';

export type { PortRange };

/** What the capture rules depend on; `renderRules` is a pure function of this and the address family. */
export interface CaptureSettings {
  proxyUid: number;
  proxyGid: number;
  capturePort: number;
  includePorts: PortRange[];
  excludePorts: PortRange[];
  excludeCidrs: Cidr[];
  /**
   * Other user ids whose traffic is never captured: a service mesh's proxy (Istio's 1337, Linkerd's 2102), which
   * forwards what the app and aigress sent; capturing it again would loop.
   */
  excludeUids: number[];
}

export type IptablesMode = 'legacy' | 'nft';

export interface InitOptions {
  capture: CaptureSettings;
  ipv6: 'auto' | 'on' | 'off';
  mode: 'auto' | IptablesMode;
  dryRun: boolean;
  cleanup: boolean;
}

/** The flags as commander hands them over: strings when given, undefined when not. */
export interface InitFlags {
  proxyUid?: string;
  proxyGid?: string;
  capturePort?: string;
  includeOutboundPorts?: string;
  excludeOutboundPorts?: string;
  excludeOutboundCidrs?: string;
  excludeUids?: string;
  ipv6?: string;
  iptablesMode?: string;
  dryRun?: boolean;
  cleanup?: boolean;
}

const USAGE = 2;

function bad(flag: string, value: string, why: string): UserError {
  return new UserError(`${flag} ${JSON.stringify(value)}: ${why}`, USAGE);
}

function integer(flag: string, value: string, min: number, max: number, what: string): number {
  const n = /^\d+$/.test(value.trim()) ? Number(value.trim()) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw bad(flag, value, `must be ${what} (${min}-${max})`);
  return n;
}

/** Comma-separated items, blanks around commas ignored; an empty string is an empty list, an empty item is an error. */
function items(flag: string, value: string): string[] {
  if (value.trim() === '') return [];
  const parts = value.split(',').map((s) => s.trim());
  if (parts.includes('')) throw bad(flag, value, 'empty item in comma-separated list');
  return parts;
}

function portList(flag: string, value: string): PortRange[] {
  const out: PortRange[] = [];
  for (const item of items(flag, value)) {
    const p = parsePortItem(item);
    if (typeof p === 'string') throw bad(flag, value, `"${item}" ${p}`);
    if (!out.some((o) => o.from === p.from && o.to === p.to)) out.push(p);
  }
  return out;
}

function uidList(flag: string, value: string): number[] {
  const out: number[] = [];
  for (const item of items(flag, value)) {
    const u = parseUidItem(item);
    if (typeof u === 'string') throw bad(flag, value, `"${item}" ${u}`);
    if (!out.includes(u)) out.push(u);
  }
  return out;
}

function cidrList(flag: string, value: string): Cidr[] {
  const out: Cidr[] = [];
  for (const item of items(flag, value)) {
    const c = parseCidr(item);
    if (typeof c === 'string') throw bad(flag, value, `"${item}" is not a CIDR: ${c}`);
    if (!out.some((o) => o.text === c.text)) out.push(c);
  }
  return out;
}

function choice<T extends string>(flag: string, value: string, allowed: readonly T[]): T {
  const v = value.trim() as T;
  if (!allowed.includes(v)) throw bad(flag, value, `must be one of ${allowed.join(', ')}`);
  return v;
}

/** Validates every flag; throws a UserError (exit 2) naming the first bad flag and its value. Pure. */
export function parseInitFlags(flags: InitFlags): InitOptions {
  const includePorts =
    flags.includeOutboundPorts === undefined
      ? DEFAULT_INCLUDE_PORTS.map((p) => ({ from: p, to: p }))
      : portList('--include-outbound-ports', flags.includeOutboundPorts);
  if (includePorts.length === 0) {
    throw bad('--include-outbound-ports', flags.includeOutboundPorts ?? '', 'must list at least one port');
  }
  const ipv6 = choice('--ipv6', flags.ipv6 ?? 'auto', ['auto', 'true', 'false'] as const);
  return {
    capture: {
      proxyUid: flags.proxyUid === undefined ? PROXY_UID : integer('--proxy-uid', flags.proxyUid, 0, 4294967294, 'a user id'),
      proxyGid: flags.proxyGid === undefined ? PROXY_GID : integer('--proxy-gid', flags.proxyGid, 0, 4294967294, 'a group id'),
      capturePort:
        flags.capturePort === undefined ? CAPTURE_PORT : integer('--capture-port', flags.capturePort, 1, 65535, 'a port number'),
      includePorts,
      excludePorts: portList('--exclude-outbound-ports', flags.excludeOutboundPorts ?? ''),
      excludeCidrs: cidrList('--exclude-outbound-cidrs', flags.excludeOutboundCidrs ?? ''),
      excludeUids: uidList('--exclude-uids', flags.excludeUids ?? ''),
    },
    ipv6: ipv6 === 'auto' ? 'auto' : ipv6 === 'true' ? 'on' : 'off',
    mode: choice('--iptables-mode', flags.iptablesMode ?? 'auto', ['auto', 'legacy', 'nft'] as const),
    dryRun: flags.dryRun === true,
    cleanup: flags.cleanup === true,
  };
}
