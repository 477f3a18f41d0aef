import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { renderCleanup, renderRules, JUMP_RULE, type Family } from '../../../sidecar/init/rules.js';
import { parseInitFlags, type InitFlags } from '../../../sidecar/init/settings.js';

// Golden files: flags (as the injected init container passes them) → iptables-restore text, per family.
// Regenerate with UPDATE_GOLDEN=1, then read every changed file before committing it.
const dir = fileURLToPath(new URL('../../fixtures/init/', import.meta.url));
const update = process.env.UPDATE_GOLDEN === '1';

function golden(name: string, actual: string): void {
  const file = `${dir}${name}`;
  if (update || !existsSync(file)) {
    if (!update) throw new Error(`golden file ${file} missing; run with UPDATE_GOLDEN=1 and review it`);
    writeFileSync(file, actual);
  }
  expect(actual).toBe(readFileSync(file, 'utf8'));
}

const manyPorts = Array.from({ length: 16 }, (_, i) => String(9001 + i)).join(',');

const cases: Record<string, InitFlags> = {
  defaults: {},
  'exclude-ports': { excludeOutboundPorts: '22, 8000-8100' },
  // 16 single ports overflow xt_multiport's 15 slots: two rules.
  'exclude-ports-many': { excludeOutboundPorts: manyPorts },
  // a bare address becomes /32; host bits are cleared the way the kernel reports them.
  'exclude-cidrs-v4': { excludeOutboundCidrs: '10.96.0.1/12,169.254.169.254' },
  'exclude-cidrs-v6': { excludeOutboundCidrs: 'FD00:10:96::1/112,2001:db8::7' },
  'exclude-mixed': { excludeOutboundPorts: '22,3306', excludeOutboundCidrs: '10.0.0.0/8,fd00::/8,192.168.0.0/16' },
  'include-ports': { includeOutboundPorts: '443,8443,9000-9100' },
  'custom-identity': { proxyUid: '2000', proxyGid: '2001', capturePort: '15555' },
  // a pod in Istio's and Linkerd's meshes: their proxies' traffic is theirs to forward, never captured again.
  'mesh-uids': { excludeUids: '1337,2102' },
  everything: {
    proxyUid: '1501',
    proxyGid: '1502',
    capturePort: '14111',
    includeOutboundPorts: '80,443,8080-8090',
    excludeOutboundPorts: '8085',
    excludeOutboundCidrs: '10.0.0.0/8,fd00::/8',
  },
};

describe('renderRules goldens', () => {
  for (const [name, flags] of Object.entries(cases)) {
    for (const family of [4, 6] as Family[]) {
      it(`${name}, IPv${family}`, () => {
        golden(`${name}.v${family}.rules`, renderRules(parseInitFlags(flags).capture, family));
      });
    }
  }

  it('cleanup removes every jump, then both chains', () => {
    const second = JUMP_RULE.replace('-p tcp ', '');
    golden('cleanup.rules', renderCleanup({ jumps: [JUMP_RULE, second], chains: true }) ?? '');
  });
});

describe('renderRules properties', () => {
  const all = parseInitFlags(cases.everything!).capture;

  it('puts IPv4 CIDRs only in the IPv4 table and IPv6 CIDRs only in the IPv6 table', () => {
    const v4 = renderRules(all, 4);
    const v6 = renderRules(all, 6);
    expect(v4).toContain('-d 10.0.0.0/8 ');
    expect(v4).not.toContain('fd00::/8');
    expect(v6).toContain('-d fd00::/8 ');
    expect(v6).not.toContain('10.0.0.0/8');
  });

  it('returns excluded ports before redirecting included ones, so an exclusion wins', () => {
    const lines = renderRules(all, 4).split('\n');
    const exclude = lines.findIndex((l) => l.includes('--dports 8085 ') && l.endsWith('-j RETURN'));
    const include = lines.findIndex((l) => l.endsWith('-j AIGRESS_REDIRECT'));
    expect(exclude).toBeGreaterThan(0);
    expect(include).toBeGreaterThan(exclude);
  });

  it('comments every rule it adds', () => {
    const rules = renderRules(all, 6)
      .split('\n')
      .filter((l) => l.startsWith('-A ') || l.startsWith('-I '));
    expect(rules.length).toBeGreaterThan(8);
    for (const r of rules) expect(r).toMatch(/ -m comment --comment "aigress: [^"]+" -j /);
  });

  it('leaves the jump out when asked, and deletes the given duplicates', () => {
    const text = renderRules(all, 4, { jump: false, deleteJumps: [JUMP_RULE] });
    expect(text).not.toContain(JUMP_RULE);
    expect(text).toContain(JUMP_RULE.replace(/^-A /, '-D '));
  });
});
