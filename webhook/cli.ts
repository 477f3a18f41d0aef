import type { Command } from 'commander';
import { UserError } from '../shared/errors.js';

// Placeholder until this subcommand's issue lands.
export function registerWebhook(program: Command): void {
  program
    .command('webhook')
    .description('Run the control plane: the mutating admission webhook (HTTPS).')
    .action(() => {
      throw new UserError('aigress webhook is not implemented yet');
    });
}
