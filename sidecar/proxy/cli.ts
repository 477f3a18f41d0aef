import type { Command } from 'commander';
import { UserError } from '../../shared/errors.js';

// Placeholder until this subcommand's issue lands.
export function registerProxy(program: Command): void {
  program
    .command('proxy')
    .description('Run the egress proxy sidecar.')
    .action(() => {
      throw new UserError('aigress proxy is not implemented yet');
    });
}
