import {
  ANNOTATION_EXCLUDE_CIDRS,
  ANNOTATION_EXCLUDE_PORTS,
  ANNOTATION_INCLUDE_PORTS,
  ANNOTATION_INJECT,
  ANNOTATION_POLICY,
  ANNOTATION_PREFIX,
  ANNOTATION_PROXY_CPU,
  ANNOTATION_PROXY_MEMORY,
  ANNOTATION_STATUS,
} from '../../shared/constants.js';
import { checkCidrItem, mergePorts, parsePortItem, splitList, type PortRange } from '../../shared/capture.js';
import { parseQuantity } from './quantity.js';

// The per-pod overrides a workload owner sets with `aigress.io/*` annotations. A malformed value denies admission:
// silently ignoring `exclude-outbound-cidrs: 10.0.0/8` would capture traffic the owner asked to leave alone.

export interface PodOverrides {
  includePorts: PortRange[];
  excludePorts: PortRange[];
  excludeCidrs: string[];
  proxyCpu?: string;
  proxyMemory?: string;
}

export type OverridesResult = { ok: true; overrides: PodOverrides; warnings: string[] } | { ok: false; message: string };

const KNOWN = [
  ANNOTATION_INJECT,
  ANNOTATION_STATUS,
  ANNOTATION_EXCLUDE_PORTS,
  ANNOTATION_EXCLUDE_CIDRS,
  ANNOTATION_INCLUDE_PORTS,
  ANNOTATION_PROXY_CPU,
  ANNOTATION_PROXY_MEMORY,
];

class BadAnnotation extends Error {}

function bad(key: string, value: string, why: string): BadAnnotation {
  return new BadAnnotation(`annotation ${key}: ${JSON.stringify(value)}: ${why}`);
}

function items(key: string, value: string): string[] {
  const parts = splitList(value);
  if (parts.includes('')) throw bad(key, value, 'has an empty item between commas');
  return parts;
}

function ports(key: string, value: string | undefined): PortRange[] {
  if (value === undefined) return [];
  return mergePorts(
    items(key, value).map((item) => {
      const p = parsePortItem(item);
      if (typeof p === 'string') throw bad(key, value, `"${item}" ${p}`);
      return p;
    }),
  );
}

function cidrs(key: string, value: string | undefined): string[] {
  if (value === undefined) return [];
  const out: string[] = [];
  for (const item of items(key, value)) {
    const why = checkCidrItem(item);
    if (why) throw bad(key, value, `"${item}" ${why}`);
    if (!out.includes(item)) out.push(item);
  }
  return out;
}

function quantity(key: string, value: string | undefined, example: string): string | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (parseQuantity(v) === undefined) throw bad(key, value, `is not a Kubernetes quantity (e.g. ${example})`);
  return v;
}

/** Reads and validates the pod's aigress annotations; pure. Unknown `aigress.io/` keys only warn (likely typos). */
export function readOverrides(annotations: Record<string, string> | undefined | null): OverridesResult {
  const a = annotations ?? {};
  const warnings = Object.keys(a)
    .filter((k) => k.startsWith(ANNOTATION_PREFIX) && !KNOWN.includes(k))
    .sort()
    .map((k) =>
      k === ANNOTATION_POLICY
        ? // Said plainly rather than half-done: the control plane serves each namespace one effective policy (all
          // its EgressPolicies merged), so a pod cannot pick one of them (docs/injection.md).
          `annotation ${k} is not supported: the pod gets its namespace's effective policy (all its EgressPolicies merged)`
        : `unknown annotation ${k} is ignored (aigress reads: ${KNOWN.map((x) => x.slice(ANNOTATION_PREFIX.length)).join(', ')})`,
    );
  try {
    const overrides: PodOverrides = {
      includePorts: ports(ANNOTATION_INCLUDE_PORTS, a[ANNOTATION_INCLUDE_PORTS]),
      excludePorts: ports(ANNOTATION_EXCLUDE_PORTS, a[ANNOTATION_EXCLUDE_PORTS]),
      excludeCidrs: cidrs(ANNOTATION_EXCLUDE_CIDRS, a[ANNOTATION_EXCLUDE_CIDRS]),
    };
    const cpu = quantity(ANNOTATION_PROXY_CPU, a[ANNOTATION_PROXY_CPU], '200m');
    const memory = quantity(ANNOTATION_PROXY_MEMORY, a[ANNOTATION_PROXY_MEMORY], '256Mi');
    if (cpu !== undefined) overrides.proxyCpu = cpu;
    if (memory !== undefined) overrides.proxyMemory = memory;
    return { ok: true, overrides, warnings };
  } catch (err) {
    if (err instanceof BadAnnotation) return { ok: false, message: err.message };
    throw err;
  }
}
