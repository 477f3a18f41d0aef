import { lookup as dnsLookup } from 'node:dns/promises';
import { isIPv4, isIPv6 } from 'node:net';

// A connection passed through by name (SNI or Host of a non-AI host) is dialled to its original destination
// (SO_ORIGINAL_DST), never to a re-resolution of the name. Whether that address is one the name resolves to is
// checked on the side: an app that sends SNI `example.org` to some other address (a provider's, its own relay's)
// is lying about where it goes. The check never delays or refuses the connection (DNS answers legitimately
// differ between resolvers, rotations and TTLs); it is counted (aigress_passthrough_address_checks_total) and
// logged. docs/security.md says what it does and does not catch.

/** `unchecked`: too many lookups already in flight (an app opening connections to many new names at once). */
export type AddressCheck = 'match' | 'mismatch' | 'unresolved' | 'unchecked';
export const ADDRESS_CHECKS: readonly AddressCheck[] = ['match', 'mismatch', 'unresolved', 'unchecked'];

/** One textual form per address: IPv4-mapped IPv6 as IPv4, IPv6 compressed and lower case. */
export function normalizeAddress(address: string): string {
  const a = address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address;
  if (isIPv4(a)) return a;
  if (!isIPv6(a)) return a.toLowerCase();
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(a);
  if (mapped && isIPv4(mapped[1]!)) return mapped[1]!;
  // The URL parser writes IPv6 in its canonical (RFC 5952) form; IPv4-mapped ones come out in hex.
  const canonical = new URL(`http://[${a}]/`).hostname.slice(1, -1);
  const hexMapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(canonical);
  if (hexMapped) {
    const hi = parseInt(hexMapped[1]!, 16);
    const lo = parseInt(hexMapped[2]!, 16);
    return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  }
  return canonical;
}

/** Pure: is the address the app dialled among those the name resolves to (undefined: it resolved to none)? */
export function checkOriginalAddress(original: string, resolved: readonly string[] | undefined): Exclude<AddressCheck, 'unchecked'> {
  if (resolved === undefined || resolved.length === 0) return 'unresolved';
  const want = normalizeAddress(original);
  return resolved.some((r) => normalizeAddress(r) === want) ? 'match' : 'mismatch';
}

/** The proxy's resolver: every address of the name, as the upstream dialler would see them. */
export type Lookup = (host: string) => Promise<string[]>;

export const systemLookup: Lookup = async (host) => (await dnsLookup(host, { all: true, verbatim: true })).map((a) => a.address);

export interface AddressCheckerOptions {
  lookup?: Lookup;
  /** How long a name's addresses are reused (each pass-through connection would otherwise cost a lookup). */
  ttlMs?: number;
  /** Names kept at most (pass-through names are the app's choice: the cache must not grow with them). */
  maxNames?: number;
  /** A lookup that takes longer counts as unresolved. */
  timeoutMs?: number;
  /**
   * Distinct names looked up at once at most: lookups share libuv's small thread pool with the upstream dialler's,
   * so an app opening connections to many new names must not queue the AI hosts' lookups behind its own.
   */
  maxInflight?: number;
  now?: () => number;
}

export type AddressChecker = (host: string, original: string) => Promise<{ result: AddressCheck; resolved: readonly string[] }>;

/**
 * Checks original destinations against the names' addresses, caching each name's answer for `ttlMs`. A mismatch
 * against a cached answer is looked up again before it counts, so a stale cache entry is never the reason;
 * concurrent checks of one name share one lookup. Never rejects.
 */
export function createAddressChecker(opts: AddressCheckerOptions = {}): AddressChecker {
  const lookup = opts.lookup ?? systemLookup;
  const ttlMs = opts.ttlMs ?? 30_000;
  const maxNames = opts.maxNames ?? 1000;
  const timeoutMs = opts.timeoutMs ?? 5_000;
  const now = opts.now ?? Date.now;
  const maxInflight = opts.maxInflight ?? 16;
  const cache = new Map<string, { at: number; addresses: readonly string[] }>();
  const inflight = new Map<string, Promise<readonly string[]>>();

  const resolve = (host: string): Promise<readonly string[]> | undefined => {
    const pending = inflight.get(host);
    if (pending) return pending;
    if (inflight.size >= maxInflight) return undefined;
    const p = lookupOnce(host).finally(() => inflight.delete(host));
    inflight.set(host, p);
    return p;
  };

  const lookupOnce = async (host: string): Promise<readonly string[]> => {
    let timer: NodeJS.Timeout | undefined;
    try {
      const addresses = await Promise.race([
        lookup(host),
        new Promise<string[]>((r) => {
          timer = setTimeout(() => r([]), timeoutMs);
          timer.unref();
        }),
      ]);
      cache.delete(host);
      cache.set(host, { at: now(), addresses });
      while (cache.size > maxNames) cache.delete(cache.keys().next().value!);
      return addresses;
    } catch {
      return [];
    } finally {
      clearTimeout(timer);
    }
  };

  return async (host, original) => {
    const cached = cache.get(host);
    if (cached && now() - cached.at < ttlMs) {
      const result = checkOriginalAddress(original, cached.addresses);
      if (result === 'match') return { result, resolved: cached.addresses };
    }
    const pending = resolve(host);
    if (!pending) return { result: 'unchecked', resolved: [] };
    const resolved = await pending;
    return { result: checkOriginalAddress(original, resolved), resolved };
  };
}
