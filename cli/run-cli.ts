import { Command, CommanderError } from 'commander';
import { VERSION } from '../shared/constants.js';
import { UserError, errorMessage } from '../shared/errors.js';

export type Register = (program: Command) => void;

// The CLI shell shared by the full binary (cli/main.ts) and the sidecar bundle (cli/sidecar.ts): each names its
// subcommands, whose modules are imported only when that subcommand runs (or for the top-level help).

/** Exit codes: 0 ok, 1 a user-fixable error (bad file, bad field), 2 bad usage, 70 an internal bug. */
export async function buildProgram(argv: readonly string[] = [], commands: Record<string, () => Promise<Register>>): Promise<Command> {
  const program = new Command('aigress')
    .description('Govern a Kubernetes cluster\'s outbound AI traffic with zero application changes.')
    .version(VERSION, '-v, --version')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  const first = argv[0];
  // `completion` describes every command, so it loads them all, as the top-level help does.
  const wanted = first !== undefined && first in commands && first !== 'completion' ? [first] : Object.keys(commands);
  for (const register of await Promise.all(wanted.map((name) => commands[name]!()))) register(program);
  for (const cmd of program.commands) cmd.exitOverride().showHelpAfterError(`(run "aigress ${cmd.name()} --help" for usage)`);
  return program;
}

export async function main(argv: string[], commands: Record<string, () => Promise<Register>>): Promise<number> {
  try {
    const program = await buildProgram(argv, commands);
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

/** Runs the CLI on process.argv with `commands`; the exit code is set, long-running commands keep the process. */
export function runCli(commands: Record<string, () => Promise<Register>>): void {
  // Long-running subcommands (webhook, proxy) keep the event loop alive; short ones exit with their code.
  main(process.argv.slice(2), commands).then(
    (code) => {
      if (code !== 0) process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`aigress: internal error: ${errorMessage(err)}\n`);
      process.exitCode = 70;
    },
  );
}
