import type { Command } from 'commander';
import { UserError } from '../shared/errors.js';

// Placeholder until this subcommand's issue lands.
export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('Run the whole path locally with embedded defaults and print a summary.')
    .action(() => {
      throw new UserError('aigress demo is not implemented yet');
    });
}
