import type { Command } from 'commander';
import { UserError } from '../../shared/errors.js';

// Placeholder until this subcommand's issue lands.
export function registerInit(program: Command): void {
  program
    .command('init')
    .description('Install the iptables rules that send the pod\'s outbound traffic to the proxy.')
    .action(() => {
      throw new UserError('aigress init is not implemented yet');
    });
}
