import type { Command } from 'commander';
import { LABEL_INJECT } from '../shared/constants.js';
import { UserError } from '../shared/errors.js';
import { loadConfig, withRuntimeDefaults } from '../webhook/config.js';
import { injectManifests } from '../webhook/inject/manifests.js';
import { parseDocuments, readInputs } from './inputs.js';
import { collect, joinStreams, manifestFormat, printManifests } from './output.js';

interface InjectFlags {
  filename: string[];
  recursive?: boolean;
  config?: string;
  namespace?: string;
  output?: string;
}

const NAMESPACE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** With several inputs each message says which file it is about; with one, the message is as before. */
export function inFile(err: unknown, source: string, several: boolean): unknown {
  return several && err instanceof UserError ? new UserError(`${source}: ${err.message}`, err.exitCode) : err;
}

export function registerInject(program: Command): void {
  program
    .command('inject')
    .description('Print Kubernetes manifests with aigress injected (like istioctl kube-inject): the webhook\'s decision, offline.')
    .requiredOption('-f, --filename <file>', 'manifests to inject: a file (multi-document YAML), a directory (its *.yaml, *.yml, *.json) or - for stdin; repeatable', collect)
    .option('-R, --recursive', 'also read the subdirectories of directories given with -f')
    .option('--config <file>', 'injection config, the same file the webhook uses (default: built-in defaults)')
    .option('-n, --namespace <name>', 'namespace for the skip rules (default: each object\'s own, else "default")')
    .option('-o, --output <format>', 'yaml or json', 'yaml')
    .addHelpText('after', `
Examples:
  aigress inject -f deploy.yaml | kubectl apply -f -
  aigress inject -f manifests/ -R -o json
  aigress inject -f app.yaml -f worker.yaml -n team-a
  helm template my-app ./chart | aigress inject -f -`)
    .action(async (flags: InjectFlags) => {
      if (flags.namespace !== undefined && (!NAMESPACE.test(flags.namespace) || flags.namespace.length > 63)) {
        throw new UserError(`--namespace ${JSON.stringify(flags.namespace)}: not a valid namespace name`, 2);
      }
      const format = manifestFormat(flags.output);
      const config = await loadConfig(flags.config);
      const files = await readInputs(flags.filename, { recursive: flags.recursive });
      const outputs: string[] = [];
      let injected = 0;
      for (const f of files) {
        parseDocuments(f); // YAML errors with file, document, line and column, before anything is printed
        try {
          const result = injectManifests(f.text, { config: withRuntimeDefaults(config.injection, process.env), namespace: flags.namespace });
          for (const note of result.notes) process.stderr.write(`aigress: ${files.length > 1 ? `${f.source}: ` : ''}${note}\n`);
          outputs.push(result.output);
          injected += result.injected;
        } catch (err) {
          throw inFile(err, f.source, files.length > 1);
        }
      }
      // Unlike the webhook, which only sees opted-in namespaces, inject cannot check the label: say what it takes.
      if (injected > 0 && config.injection.controlPlane.address !== '') {
        process.stderr.write(
          `aigress: note: the control plane issues certificates and policy only to pods in namespaces labelled ${LABEL_INJECT}=enabled; ` +
            'elsewhere the injected proxies never become ready (their log and aigress_proxy_certificate_renewal_failures_total{reason="NamespaceNotEnabled"} say so)\n',
        );
      }
      process.stdout.write(printManifests(joinStreams(outputs), format));
    });
}
