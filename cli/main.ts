import { Command, CommanderError } from 'commander';
import { VERSION } from '../shared/constants.js';
import { UserError, errorMessage } from '../shared/errors.js';
import { registerInit } from '../sidecar/init/cli.js';
import { registerProxy } from '../sidecar/proxy/cli.js';
import { registerWebhook } from '../webhook/cli.js';
import { registerDemo } from './demo.js';
import { registerInject } from './inject.js';

/** Exit codes: 0 ok, 1 a user-fixable error (bad file, bad field), 2 bad usage, 70 an internal bug. */
export function buildProgram(): Command {
  const program = new Command('aigress')
    .description('Govern a Kubernetes cluster\'s outbound AI traffic with zero application changes.')
    .version(VERSION, '-v, --version')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  registerWebhook(program);
  registerProxy(program);
  registerInit(program);
  registerInject(program);
  registerDemo(program);
  for (const cmd of program.commands) cmd.exitOverride().showHelpAfterError(`(run "aigress ${cmd.name()} --help" for usage)`);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2; // commander already printed it
    if (err instanceof UserError) {
      process.stderr.write(`aigress: ${err.message}\n`);
      return err.exitCode;
    }
    process.stderr.write(`aigress: internal error: ${errorMessage(err)}\n`);
    if (process.env.AIGRESS_DEBUG) process.stderr.write(`${(err as Error).stack ?? ''}\n`);
    return 70;
  }
}

// Long-running subcommands (webhook, proxy) keep the event loop alive; short ones exit with their code.
main(process.argv.slice(2)).then(
  (code) => {
    if (code !== 0) process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`aigress: internal error: ${errorMessage(err)}\n`);
    process.exitCode = 70;
  },
);
