import type { Command } from 'commander';
import { VERSION } from '../shared/constants.js';
import { UserError } from '../shared/errors.js';
import { chartCrds } from './chart-files.js';
import { evaluate, formatResults } from './check/checks.js';
import { gatherFacts, type CheckOptions } from './check/facts.js';
import { clusterFromFlags } from './check/kube-http.js';

interface CheckFlags {
  kubeconfig?: string;
  pre?: boolean;
  aigressNamespace: string;
  caSecret: string;
  caWarnDays: string;
  output?: string;
}

export function registerCheck(program: Command): void {
  program
    .command('check')
    .description('Check a cluster for aigress, each check with a pass/fail line and a hint: the Kubernetes version (native sidecars), the CRDs installed and current, control plane replicas ready, the CA Secret valid and not near expiry, the webhook\'s caBundle matching the CA, a dry-run admission injected, opted-in namespaces and their Pod Security level, each one\'s EgressPolicy accepted, and injected pods whose proxy version differs from the control plane\'s. --pre checks a cluster before install. Exits 1 when any check fails.')
    .option('--kubeconfig <file>', 'kubeconfig (default: $KUBECONFIG, ~/.kube/config, or the in-cluster account)')
    .option('--pre', 'check a cluster before installing aigress')
    .option('--aigress-namespace <name>', 'the namespace aigress is installed in', 'aigress-system')
    .option('--ca-secret <name>', 'the CA Secret (chart value ca.secretName)', 'aigress-ca')
    .option('--ca-warn-days <days>', 'warn when the CA expires within this many days', '30')
    .option('-o, --output <format>', 'text or json', 'text')
    .addHelpText('after', `
Examples:
  aigress check --pre                       # before helm install
  aigress check                             # after: every check, exit 1 on any failure
  aigress check --kubeconfig ~/.kube/prod -o json
  aigress check --aigress-namespace platform-aigress --ca-secret my-ca`)
    .action(async (flags: CheckFlags) => {
      const output = flags.output ?? 'text';
      if (output !== 'text' && output !== 'json') throw new UserError(`-o ${JSON.stringify(output)}: must be text or json`, 2);
      const days = /^\d+$/.test(flags.caWarnDays) ? Number(flags.caWarnDays) : NaN;
      if (!Number.isFinite(days)) throw new UserError(`--ca-warn-days ${JSON.stringify(flags.caWarnDays)}: must be a whole number of days`, 2);
      const http = clusterFromFlags(flags.kubeconfig);
      const opts: CheckOptions = {
        namespace: flags.aigressNamespace, caSecret: flags.caSecret, expectedCrds: chartCrds(), clientVersion: VERSION,
        now: new Date(), caWarnDays: days,
      };
      const pre = flags.pre === true;
      const results = evaluate(await gatherFacts(http, opts, pre), opts, pre);
      process.stdout.write(output === 'json' ? `${JSON.stringify({ pre, results }, null, 2)}\n` : formatResults(results));
      const failed = results.filter((r) => r.status === 'fail');
      if (failed.length > 0) throw new UserError(`${failed.length} check${failed.length === 1 ? '' : 's'} failed: ${failed.map((r) => r.id).join(', ')}`);
    });
}
