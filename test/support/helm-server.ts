import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { helmBinary, type HelmResult } from './helm.js';

/**
 * helm run asynchronously, for commands that talk to a (fake) API server in this same process: spawnSync would
 * block the event loop the server answers on. Isolated home as in helm.ts; the kubeconfig is given explicitly.
 */
export function helmAsync(args: string[], opts: { kubeconfig: string }): Promise<HelmResult> {
  const home = mkdtempSync(join(tmpdir(), 'aigress-helm-server-'));
  const env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: home,
    HELM_CACHE_HOME: join(home, 'cache'),
    HELM_CONFIG_HOME: join(home, 'config'),
    HELM_DATA_HOME: join(home, 'data'),
    KUBECONFIG: opts.kubeconfig,
  };
  return new Promise((resolve, reject) => {
    const child = spawn(helmBinary(), args, { env, cwd: join(import.meta.dirname, '../..') });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}
