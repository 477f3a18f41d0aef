import type { Command } from 'commander';
import { UserError } from '../shared/errors.js';

// Placeholder until this subcommand's issue lands.
export function registerInject(program: Command): void {
  program
    .command('inject')
    .description('Print Kubernetes manifests with aigress injected (like istioctl kube-inject).')
    .action(() => {
      throw new UserError('aigress inject is not implemented yet');
    });
}
