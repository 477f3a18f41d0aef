import { describe, expect, it } from 'vitest';
import { CAPTURE_PORT, DEFAULT_INCLUDE_PORTS, PROXY_GID, PROXY_UID } from '../../../shared/constants.js';
import { UserError } from '../../../shared/errors.js';
import { parseCidr } from '../../../shared/cidr.js';
import { parseInitFlags, type InitFlags } from '../../../sidecar/init/settings.js';

function failure(flags: InitFlags): UserError {
  try {
    parseInitFlags(flags);
  } catch (err) {
    if (err instanceof UserError) return err;
    throw err;
  }
  throw new Error(`accepted ${JSON.stringify(flags)}`);
}

describe('parseInitFlags', () => {
  it('takes every default from shared/constants', () => {
    const o = parseInitFlags({});
    expect(o.capture.proxyUid).toBe(PROXY_UID);
    expect(o.capture.proxyGid).toBe(PROXY_GID);
    expect(o.capture.capturePort).toBe(CAPTURE_PORT);
    expect(o.capture.includePorts.map((p) => p.from)).toEqual([...DEFAULT_INCLUDE_PORTS]);
    expect(o.capture.excludePorts).toEqual([]);
    expect(o.capture.excludeCidrs).toEqual([]);
    expect(o).toMatchObject({ ipv6: 'auto', mode: 'auto', dryRun: false, cleanup: false });
  });

  it('parses lists with blanks around commas, ranges, and drops duplicates keeping the first order', () => {
    const o = parseInitFlags({ includeOutboundPorts: ' 8443 , 443,8000-8010,443', excludeOutboundCidrs: '10.0.0.1/8, 10.0.0.0/8' });
    expect(o.capture.includePorts).toEqual([
      { from: 8443, to: 8443 },
      { from: 443, to: 443 },
      { from: 8000, to: 8010 },
    ]);
    expect(o.capture.excludeCidrs).toEqual([{ family: 4, text: '10.0.0.0/8' }]);
  });

  it('maps --ipv6 and --iptables-mode values', () => {
    expect(parseInitFlags({ ipv6: 'true' }).ipv6).toBe('on');
    expect(parseInitFlags({ ipv6: 'false' }).ipv6).toBe('off');
    expect(parseInitFlags({ iptablesMode: 'legacy' }).mode).toBe('legacy');
    expect(parseInitFlags({ iptablesMode: 'nft', dryRun: true, cleanup: true })).toMatchObject({
      mode: 'nft',
      dryRun: true,
      cleanup: true,
    });
  });

  it('accepts an empty exclude list (an empty annotation) as no exclusions', () => {
    expect(parseInitFlags({ excludeOutboundPorts: '', excludeOutboundCidrs: ' ' }).capture).toMatchObject({
      excludePorts: [],
      excludeCidrs: [],
      excludeUids: [],
    });
  });

  const bad: [InitFlags, string, string][] = [
    [{ proxyUid: 'root' }, '--proxy-uid', 'root'],
    [{ proxyUid: '-1' }, '--proxy-uid', '-1'],
    [{ proxyUid: '4294967295' }, '--proxy-uid', '4294967295'],
    [{ proxyGid: '1.5' }, '--proxy-gid', '1.5'],
    [{ capturePort: '0' }, '--capture-port', '0'],
    [{ capturePort: '65536' }, '--capture-port', '65536'],
    [{ capturePort: '' }, '--capture-port', ''],
    [{ includeOutboundPorts: '' }, '--include-outbound-ports', ''],
    [{ includeOutboundPorts: '80,,443' }, '--include-outbound-ports', '80,,443'],
    [{ includeOutboundPorts: 'https' }, '--include-outbound-ports', 'https'],
    [{ excludeOutboundPorts: '9000-8000' }, '--exclude-outbound-ports', '9000-8000'],
    [{ excludeOutboundPorts: '22,70000' }, '--exclude-outbound-ports', '22,70000'],
    [{ excludeOutboundCidrs: '10.0.0.0/33' }, '--exclude-outbound-cidrs', '10.0.0.0/33'],
    [{ excludeOutboundCidrs: 'fd00::/129' }, '--exclude-outbound-cidrs', 'fd00::/129'],
    [{ excludeOutboundCidrs: '10.0.0/8' }, '--exclude-outbound-cidrs', '10.0.0/8'],
    [{ excludeOutboundCidrs: 'example.com' }, '--exclude-outbound-cidrs', 'example.com'],
    [{ ipv6: 'yes' }, '--ipv6', 'yes'],
    [{ iptablesMode: 'iptables' }, '--iptables-mode', 'iptables'],
  ];
  for (const [flags, flag, value] of bad) {
    it(`rejects ${flag} ${JSON.stringify(value)} with a one-line usage error naming both`, () => {
      const err = failure(flags);
      expect(err.exitCode).toBe(2);
      expect(err.message.startsWith(`${flag} ${JSON.stringify(value)}: `)).toBe(true);
      expect(err.message).not.toContain('\n');
    });
  }
});

describe('parseCidr', () => {
  it.each([
    ['10.1.2.3/8', 4, '10.0.0.0/8'],
    ['192.168.7.9', 4, '192.168.7.9/32'],
    ['0.0.0.0/0', 4, '0.0.0.0/0'],
    ['172.16.255.255/12', 4, '172.16.0.0/12'],
    ['10.0.0.255/25', 4, '10.0.0.128/25'],
    ['FD00::1/8', 6, 'fd00::/8'],
    ['2001:db8:0:0:1:0:0:1', 6, '2001:db8::1:0:0:1/128'],
    ['2001:db8:1:2:3:4:5:6/64', 6, '2001:db8:1:2::/64'],
    ['::/0', 6, '::/0'],
    ['::1', 6, '::1/128'],
    ['2001:db8::ff/121', 6, '2001:db8::80/121'],
    ['::ffff:10.1.2.3/120', 6, '::ffff:a01:200/120'],
    ['1:0:0:2:0:0:0:3', 6, '1:0:0:2::3/128'],
  ] as const)('%s → IPv%i %s', (input, family, text) => {
    expect(parseCidr(input)).toEqual({ family, text });
  });

  it.each(['10.0.0.0/', '10.0.0.0/-1', '10.0.0.0/8/8', '256.0.0.0/8', 'fd00::/0129', ''])('rejects %j', (input) => {
    expect(typeof parseCidr(input)).toBe('string');
  });
});
