import { Command, CommanderError } from 'commander';
import { VERSION } from '../shared/constants.js';
import { UserError, errorMessage } from '../shared/errors.js';

type Register = (program: Command) => void;

// Each subcommand's module is imported only when that subcommand runs (or for the top-level help): the proxy
// is started in every pod, and loading the control plane's code there would cost it ~1 s and ~60 MiB.
const COMMANDS: Record<string, () => Promise<Register>> = {
  webhook: async () => (await import('../webhook/cli.js')).registerWebhook,
  proxy: async () => (await import('../sidecar/proxy/cli.js')).registerProxy,
  init: async () => (await import('../sidecar/init/cli.js')).registerInit,
  inject: async () => (await import('./inject.js')).registerInject,
  uninject: async () => (await import('./uninject.js')).registerUninject,
  policy: async () => (await import('./policy.js')).registerPolicy,
  check: async () => (await import('./check.js')).registerCheck,
  version: async () => (await import('./version.js')).registerVersion,
  completion: async () => (await import('./completion.js')).registerCompletion,
  demo: async () => (await import('./demo.js')).registerDemo,
};

/** Exit codes: 0 ok, 1 a user-fixable error (bad file, bad field), 2 bad usage, 70 an internal bug. */
export async function buildProgram(argv: readonly string[] = []): Promise<Command> {
  const program = new Command('aigress')
    .description('Govern a Kubernetes cluster\'s outbound AI traffic with zero application changes.')
    .version(VERSION, '-v, --version')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  const first = argv[0];
  // `completion` describes every command, so it loads them all, as the top-level help does.
  const wanted = first !== undefined && first in COMMANDS && first !== 'completion' ? [first] : Object.keys(COMMANDS);
  for (const register of await Promise.all(wanted.map((name) => COMMANDS[name]!()))) register(program);
  for (const cmd of program.commands) cmd.exitOverride().showHelpAfterError(`(run "aigress ${cmd.name()} --help" for usage)`);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  try {
    const program = await buildProgram(argv);
    await program.parseAsync(argv, { from: 'user' });
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
