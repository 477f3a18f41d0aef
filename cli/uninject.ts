import type { Command } from 'commander';
import { inFile } from './inject.js';
import { parseDocuments, readInputs } from './inputs.js';
import { collect, joinStreams, manifestFormat, printManifests } from './output.js';
import { uninjectManifests } from './uninject/manifests.js';

interface UninjectFlags {
  filename: string[];
  recursive?: boolean;
  output?: string;
}

export function registerUninject(program: Command): void {
  program
    .command('uninject')
    .description('Print manifests with aigress taken out: the exact inverse of `aigress inject` (the init container, the proxy, their volumes, the CA mount and env vars, the status annotation). Documents without aigress come back unchanged.')
    .requiredOption('-f, --filename <file>', 'a file, a directory (its *.yaml, *.yml, *.json) or - for stdin; repeatable', collect)
    .option('-R, --recursive', 'also read the subdirectories of directories given with -f')
    .option('-o, --output <format>', 'yaml or json', 'yaml')
    .addHelpText('after', `
Examples:
  aigress uninject -f injected.yaml
  kubectl get deploy chat -n team-a -o yaml | aigress uninject -f - | kubectl apply -f -
  aigress uninject -f manifests/ -R -o json`)
    .action(async (flags: UninjectFlags) => {
      const format = manifestFormat(flags.output);
      const files = await readInputs(flags.filename, { recursive: flags.recursive });
      const outputs: string[] = [];
      for (const f of files) {
        parseDocuments(f); // YAML errors with file, document, line and column
        try {
          const r = uninjectManifests(f.text);
          if (r.changed === 0) process.stderr.write(`aigress: ${f.source}: nothing of aigress found, printed unchanged\n`);
          outputs.push(r.output);
        } catch (err) {
          throw inFile(err, f.source, files.length > 1);
        }
      }
      process.stdout.write(printManifests(joinStreams(outputs), format));
    });
}
