import type { Command } from 'commander';
import { UserError } from '../shared/errors.js';

interface DemoFlags {
  verbose?: boolean;
  keep?: boolean;
  json?: boolean;
}

// `aigress demo`: flags and help here; the demo itself (webhook, proxy, fake provider) loads only when it runs.
export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description(
      'Run the whole path locally with embedded defaults and print a summary: a sample pod admitted through the ' +
        'webhook, the proxy started from the injected spec, real calls as the app to a fake OpenAI/Anthropic ' +
        '(allowed, streamed, denied by model and by region, a non-AI site passed through), and the metered tokens. ' +
        'Loopback only, ephemeral ports, no root; exits 1 naming the step if any outcome is not the expected one.',
    )
    .option('--verbose', "show the webhook's and the proxy's log lines (JSON, on stderr)")
    .option('--keep', 'keep the temporary directory (CA, policy.yaml, CA bundle, fake provider root) and print its path')
    .option('--json', 'print the summary as one JSON document (machine-readable) instead of text')
    .action(async (flags: DemoFlags) => {
      const [{ runDemo }, { formatReport }] = await Promise.all([import('./demo/run.js'), import('./demo/report.js')]);
      const report = await runDemo({ verbose: flags.verbose === true, keep: flags.keep === true });
      process.stdout.write(flags.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
      if (!report.ok) throw new UserError(`demo failed at step ${report.failedStep ?? '?'}: ${report.failure ?? 'unknown error'}`);
    });
}
