import type { Command } from 'commander';
import { CAPTURE_PORT, DEFAULT_INCLUDE_PORTS, PROXY_GID, PROXY_UID } from '../../shared/constants.js';
import { createLogger } from '../../shared/log.js';
import { runInit } from './apply.js';
import { parseInitFlags, type InitFlags } from './settings.js';

// Values are validated by parseInitFlags, not commander, so every bad one gets the same one-line message
// naming the flag and the value (exit 2).
export function registerInit(program: Command): void {
  program
    .command('init')
    .description(
      'Install the iptables rules that send the pod\'s outbound TCP to the proxy (the aigress-init container; needs NET_ADMIN).',
    )
    .option('--proxy-uid <uid>', `user id of the proxy, whose traffic is never captured (default ${PROXY_UID})`)
    .option('--proxy-gid <gid>', `group id of the proxy, whose traffic is never captured (default ${PROXY_GID})`)
    .option('--capture-port <port>', `local port the proxy listens on for captured connections (default ${CAPTURE_PORT})`)
    .option(
      '--include-outbound-ports <list>',
      `comma-separated destination ports (or ranges like 8000-8100) to capture (default ${DEFAULT_INCLUDE_PORTS.join(',')})`,
    )
    .option('--exclude-outbound-ports <list>', 'comma-separated destination ports or ranges never captured (wins over includes)')
    .option('--exclude-outbound-cidrs <list>', 'comma-separated destination CIDRs never captured; IPv4 and IPv6 both allowed')
    .option(
      '--exclude-uids <list>',
      'comma-separated user ids whose traffic is never captured: a service mesh proxy (Istio 1337, Linkerd 2102) that forwards it',
    )
    .option('--ipv6 <auto|true|false>', 'also install IPv6 rules; auto: when the kernel has IPv6 and ip6tables-restore is installed (default auto)')
    .option(
      '--iptables-mode <auto|legacy|nft>',
      'iptables backend; auto: the one that already has rules in this network namespace, else nft (default auto)',
    )
    .option('--dry-run', 'print the iptables-restore input instead of applying it; changes nothing, needs no privileges')
    .option('--cleanup', 'remove the aigress chains and the jump to them instead of installing them')
    .action(async (flags: InitFlags) => {
      const opts = parseInitFlags(flags);
      await runInit(opts, createLogger('init'), process.stdout);
    });
}
