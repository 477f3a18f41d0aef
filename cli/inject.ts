import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { UserError } from '../shared/errors.js';
import { loadConfig, withRuntimeDefaults } from '../webhook/config.js';
import { injectManifests } from '../webhook/inject/manifests.js';

interface InjectFlags {
  filename: string;
  config?: string;
  namespace?: string;
}

const NAMESPACE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

async function readInput(file: string): Promise<string> {
  if (file === '-') {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  }
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new UserError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}

export function registerInject(program: Command): void {
  program
    .command('inject')
    .description('Print Kubernetes manifests with aigress injected (like istioctl kube-inject).')
    .requiredOption('-f, --filename <file>', 'manifests to inject (multi-document YAML); - reads stdin')
    .option('--config <file>', 'injection config, the same file the webhook uses (default: built-in defaults)')
    .option('-n, --namespace <name>', 'namespace for the skip rules (default: each object\'s own, else "default")')
    .action(async (flags: InjectFlags) => {
      if (flags.namespace !== undefined && (!NAMESPACE.test(flags.namespace) || flags.namespace.length > 63)) {
        throw new UserError(`--namespace ${JSON.stringify(flags.namespace)}: not a valid namespace name`, 2);
      }
      const config = await loadConfig(flags.config);
      const text = await readInput(flags.filename);
      const result = injectManifests(text, { config: withRuntimeDefaults(config.injection, process.env), namespace: flags.namespace });
      for (const note of result.notes) process.stderr.write(`aigress: ${note}\n`);
      process.stdout.write(result.output);
    });
}
