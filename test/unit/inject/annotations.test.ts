import { describe, expect, it } from 'vitest';
import { readOverrides } from '../../../webhook/inject/annotations.js';
import { parseQuantity } from '../../../webhook/inject/quantity.js';

describe('capture annotations', () => {
  it('parses ports, ranges, CIDRs and bare addresses, deduplicated and sorted', () => {
    const r = readOverrides({
      'aigress.io/include-outbound-ports': ' 9000-9010, 8443 ,8443',
      'aigress.io/exclude-outbound-ports': '6379,5432',
      'aigress.io/exclude-outbound-cidrs': '10.0.0.0/8, fd00::/8,169.254.169.254,10.0.0.0/8',
    });
    expect(r).toEqual({
      ok: true,
      warnings: [],
      overrides: {
        includePorts: [
          { from: 8443, to: 8443 },
          { from: 9000, to: 9010 },
        ],
        excludePorts: [
          { from: 5432, to: 5432 },
          { from: 6379, to: 6379 },
        ],
        excludeCidrs: ['10.0.0.0/8', 'fd00::/8', '169.254.169.254'],
      },
    });
  });

  it('treats an empty value as an empty list', () => {
    const r = readOverrides({ 'aigress.io/exclude-outbound-ports': '' });
    expect(r.ok && r.overrides.excludePorts).toEqual([]);
  });

  it.each([
    ['aigress.io/exclude-outbound-ports', '80,http', '"http" is not a port (1-65535) or a port range like 8000-8100'],
    ['aigress.io/exclude-outbound-ports', '0', '"0" is out of range (ports are 1-65535)'],
    ['aigress.io/include-outbound-ports', '70000', '"70000" is out of range (ports are 1-65535)'],
    ['aigress.io/include-outbound-ports', '9010-9000', '"9010-9000" is a range whose start is above its end'],
    ['aigress.io/include-outbound-ports', '80,,443', 'has an empty item between commas'],
    ['aigress.io/exclude-outbound-cidrs', '10.0.0/8', '"10.0.0/8" is not a CIDR (e.g. 10.0.0.0/8 or fd00::/8)'],
    ['aigress.io/exclude-outbound-cidrs', '10.0.0.0/33', '"10.0.0.0/33" has a bad prefix length (0-32 for IPv4)'],
    ['aigress.io/exclude-outbound-cidrs', 'fd00::/129', '"fd00::/129" has a bad prefix length (0-128 for IPv6)'],
    ['aigress.io/exclude-outbound-cidrs', 'example.com', '"example.com" is not a CIDR (e.g. 10.0.0.0/8 or fd00::/8)'],
    ['aigress.io/proxy-cpu', 'two', 'is not a Kubernetes quantity (e.g. 200m)'],
    ['aigress.io/proxy-memory', '-1Gi', 'is not a Kubernetes quantity (e.g. 256Mi)'],
  ])('denies %s: %j naming the annotation and the bad value', (key, value, why) => {
    expect(readOverrides({ [key]: value })).toEqual({ ok: false, message: `annotation ${key}: ${JSON.stringify(value)}: ${why}` });
  });

  it('warns about unknown aigress.io/ annotations and ignores other prefixes', () => {
    const r = readOverrides({ 'aigress.io/proxy-cpus': '1', 'sidecar.istio.io/inject': 'true' });
    expect(r.ok && r.warnings).toEqual([expect.stringMatching(/^unknown annotation aigress.io\/proxy-cpus is ignored/)]);
  });

  it('passes the proxy overrides through, trimmed', () => {
    const r = readOverrides({ 'aigress.io/proxy-cpu': ' 250m ', 'aigress.io/proxy-memory': '1Gi' });
    expect(r.ok && r.overrides).toMatchObject({ proxyCpu: '250m', proxyMemory: '1Gi' });
  });

  it('says that aigress.io/policy is not supported instead of ignoring it silently', () => {
    const r = readOverrides({ 'aigress.io/policy': 'strict' });
    expect(r.ok && r.overrides).not.toHaveProperty('policy');
    expect(r.ok && r.warnings).toEqual([
      "annotation aigress.io/policy is not supported: the pod gets its namespace's effective policy (all its EgressPolicies merged)",
    ]);
  });
});

describe('quantities', () => {
  it.each([
    ['100m', 0.1],
    ['2', 2],
    ['1.5', 1.5],
    ['128Mi', 128 * 2 ** 20],
    ['1G', 1e9],
    ['2e3', 2000],
    ['.5', 0.5],
  ])('%s = %d', (q, n) => expect(parseQuantity(q)).toBeCloseTo(n));

  it.each(['', 'm', '1.2.3', '10MB', '-1', '1 Gi', 'Infinity'])('%j is not a quantity', (q) => expect(parseQuantity(q)).toBeUndefined());
});
