import type { Command } from 'commander';
import { VERSION } from '../shared/constants.js';
import { UserError } from '../shared/errors.js';
import { controlPlaneVersion, proxyVersions } from './check/checks.js';
import { clusterFromFlags } from './check/kube-http.js';

interface VersionFlags {
  kubeconfig?: string;
  aigressNamespace: string;
  short?: boolean;
  output?: string;
}

type Obj = Record<string, unknown>;

export function registerVersion(program: Command): void {
  program
    .command('version')
    .description('Print the client\'s version; with --kubeconfig also the control plane\'s and the injected proxies\' (from each pod\'s aigress.io/status).')
    .option('--kubeconfig <file>', 'also ask this cluster')
    .option('--aigress-namespace <name>', 'the namespace aigress is installed in', 'aigress-system')
    .option('--short', 'the client version only, nothing else')
    .option('-o, --output <format>', 'text or json', 'text')
    .addHelpText('after', `
Examples:
  aigress version --short
  aigress version --kubeconfig ~/.kube/config
  aigress version --kubeconfig ~/.kube/config -o json`)
    .action(async (flags: VersionFlags) => {
      const output = flags.output ?? 'text';
      if (output !== 'text' && output !== 'json') throw new UserError(`-o ${JSON.stringify(output)}: must be text or json`, 2);
      if (flags.short) {
        process.stdout.write(`${VERSION}\n`);
        return;
      }
      const report: { client: string; controlPlane?: string | null; proxies?: Record<string, number> } = { client: VERSION };
      if (flags.kubeconfig !== undefined) {
        const http = clusterFromFlags(flags.kubeconfig);
        const ns = encodeURIComponent(flags.aigressNamespace);
        const [dep, pods] = await Promise.all([http.get(`/apis/apps/v1/namespaces/${ns}/deployments/aigress`), http.get('/api/v1/pods')]);
        if (dep.status === 0 || dep.status >= 500) throw new UserError(`cannot read the control plane from ${http.server}: HTTP ${dep.status}`);
        report.controlPlane = dep.status === 200 ? (controlPlaneVersion(dep.body as Obj) ?? 'unknown') : null;
        if (pods.status !== 200) throw new UserError(`cannot list pods in ${http.server}: HTTP ${pods.status} (${String((pods.body as Obj | null)?.message ?? '')})`);
        const items = ((pods.body as Obj).items as Obj[] | undefined) ?? [];
        report.proxies = Object.fromEntries([...proxyVersions(items)].map(([v, list]) => [v, list.length]));
      }
      if (output === 'json') {
        process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
        return;
      }
      const lines = [`client: ${report.client}`];
      if (report.controlPlane !== undefined) lines.push(`control plane: ${report.controlPlane ?? `not installed (no Deployment ${flags.aigressNamespace}/aigress)`}`);
      if (report.proxies) {
        const entries = Object.entries(report.proxies);
        lines.push(`proxies: ${entries.length === 0 ? 'no injected pods' : entries.map(([v, n]) => `${v} (${n} pod${n === 1 ? '' : 's'})`).join(', ')}`);
      }
      process.stdout.write(`${lines.join('\n')}\n`);
    });
}
