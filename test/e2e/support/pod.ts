import { randomUUID } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, realpathSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { netnsExec, type PodNetwork } from './netns.js';
import {
  containerArgv,
  containerEnv,
  containerIdentity,
  containerMounts,
  containerScript,
  findContainer,
  PodSpecError,
  type Pod,
  type PodRuntime,
  type Probe,
  type Volume,
} from './pod-spec.js';
import { Background, run, type RunResult } from './process.js';

// Plays one pod: each container of the spec becomes a process in the pod's network namespace, with the
// mounts, user, capabilities and environment its spec gives it (see pod-spec.ts). Volumes are host
// directories under the run's temp dir; every container that mounts one sees the same directory, as with
// an emptyDir. Probes and scrapes come from the outside namespace to the pod's address, as the kubelet's
// and Prometheus' would.

export const IMAGE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface PodHarnessOptions {
  net: PodNetwork;
  pod: Pod;
  /** The run's private temp dir (world-readable: the pod's UIDs enter it). */
  dir: string;
  /** `command[0]` → the argv it stands for in this "image" (e.g. aigress → node bin/aigress.js). */
  entrypoint: Record<string, readonly string[]>;
  /** What each container's image sets in its environment before the spec's env (PATH, HOME…). */
  imageEnv?: Record<string, Record<string, string>>;
}

export interface StartOptions {
  /** Replaces the spec's command+args (like `kubectl exec` into the container). */
  argv?: readonly string[];
  /** Added to the environment; only for what the outside world provides (see the suite for why each). */
  extraEnv?: Record<string, string>;
}

export class PodHarness {
  readonly runtime: PodRuntime;
  private readonly volumes = new Map<string, string>();

  constructor(private readonly opts: PodHarnessOptions) {
    this.runtime = { podIP: opts.net.podAddr, hostIP: opts.net.outAddr, nodeName: 'e2e-node', uid: randomUUID() };
  }

  get pod(): Pod {
    return this.opts.pod;
  }

  /** The `ip netns exec …` argv that starts container `name` as its spec says. */
  command(name: string, start: StartOptions = {}): [string, string[]] {
    const pod = this.opts.pod;
    const c = findContainer(pod, name);
    const env = { ...containerEnv(pod, c, this.runtime, this.opts.imageEnv?.[name] ?? { PATH: IMAGE_PATH }), ...start.extraEnv };
    const argv = start.argv ? [...start.argv] : containerArgv(c, env, this.opts.entrypoint);
    const identity = containerIdentity(pod, c);
    const script = containerScript({
      mounts: containerMounts(pod, c, (v) => this.volumeDir(v)),
      identity,
      env,
      argv,
      cwd: env.HOME && existsSync(env.HOME) ? env.HOME : '/',
      exists: existsSync,
      realpath: realPathOfMissing,
    });
    return netnsExec(this.opts.net.pod, ['/bin/sh', '-c', script]);
  }

  /** Starts container `name` in the background. */
  start(name: string, start: StartOptions = {}): Background {
    const [cmd, args] = this.command(name, start);
    return new Background(cmd, args, { env: { PATH: IMAGE_PATH } });
  }

  /** Runs a command in container `name` to completion (like `kubectl exec`). */
  exec(name: string, argv: readonly string[], opts: { extraEnv?: Record<string, string>; timeoutMs?: number } = {}): Promise<RunResult> {
    const [cmd, args] = this.command(name, { argv, extraEnv: opts.extraEnv });
    return run(cmd, args, { env: { PATH: IMAGE_PATH }, timeoutMs: opts.timeoutMs ?? 30_000 });
  }

  /** The host directory behind a pod volume, created on first use. */
  volumeDir(v: Volume): string {
    const known = this.volumes.get(v.name);
    if (known) return known;
    const dir = join(this.opts.dir, 'volumes', v.name);
    mkdirSync(dir, { recursive: true });
    if (v.emptyDir) {
      chmodSync(dir, 0o777); // an emptyDir is world-writable, whichever UID each container runs as
    } else if (v.projected) {
      for (const source of v.projected.sources) {
        const token = source.serviceAccountToken;
        const kinds = Object.keys(source).filter((k) => k !== 'serviceAccountToken');
        if (!token || kinds.length > 0) {
          throw new PodSpecError(`volume ${v.name}: projected source ${kinds.join(', ') || '(empty)'} is not played by the harness`);
        }
        const file = join(dir, token.path);
        mkdirSync(dirname(file), { recursive: true });
        // A dummy: standalone mode never presents it; its presence is what the spec promises the proxy.
        writeFileSync(file, `e2e-dummy-token-for-audience-${token.audience ?? 'apiserver'}\n`, { mode: 0o644 });
      }
      chmodSync(dir, 0o755);
    } else {
      const kind = Object.keys(v).filter((k) => k !== 'name').join(', ');
      throw new PodSpecError(`volume ${v.name}: kind ${kind} is not played by the harness (emptyDir and projected tokens are)`);
    }
    this.volumes.set(v.name, dir);
    return dir;
  }

  /** An HTTP GET from the outside namespace to the pod's address (what the kubelet and Prometheus do). */
  async httpGet(port: number, path: string): Promise<{ status: number; body: string }> {
    const [cmd, args] = netnsExec(this.opts.net.out, [
      '/usr/bin/curl', '-sS', '--max-time', '3', '-w', '\n%{http_code}', `http://${this.opts.net.podAddr}:${port}${path}`,
    ]);
    const r = await run(cmd, args, { timeoutMs: 5_000 });
    const cut = r.stdout.lastIndexOf('\n');
    const status = Number(r.stdout.slice(cut + 1)) || 0;
    return { status, body: cut >= 0 ? r.stdout.slice(0, cut) : '' };
  }

  /** Polls the container's startup (or readiness) probe until it passes; throws with the reason otherwise. */
  async waitProbe(name: string, proc: Background, timeoutMs = 20_000): Promise<Probe> {
    const c = findContainer(this.opts.pod, name);
    const probe = c.startupProbe ?? c.readinessProbe;
    if (!probe?.httpGet) throw new PodSpecError(`container ${name} has no httpGet startup or readiness probe to wait on`);
    const get = probe.httpGet;
    const port = typeof get.port === 'number' ? get.port : c.ports?.find((p) => p.name === get.port)?.containerPort;
    if (port === undefined) throw new PodSpecError(`container ${name}: probe port "${get.port}" is not one of its named ports`);
    const deadline = Date.now() + timeoutMs;
    let last = '';
    while (Date.now() < deadline) {
      if (!proc.running) throw new Error(`container ${name} exited before its probe passed: ${proc.stderr.trim().slice(-2000)}`);
      const r = await this.httpGet(port, get.path ?? '/');
      if (r.status >= 200 && r.status < 400) return probe;
      last = `HTTP ${r.status} ${r.body.slice(0, 200)}`;
      await new Promise((res) => setTimeout(res, 200));
    }
    throw new Error(`container ${name}: probe GET :${port}${get.path ?? '/'} did not pass in ${timeoutMs} ms (last: ${last})\nstderr: ${proc.stderr.slice(-2000)}`);
  }
}

/** realpath of a path that may not exist yet: resolve its deepest existing ancestor (/var/run → /run). */
function realPathOfMissing(path: string): string {
  let head = path;
  let tail = '';
  while (!existsSync(head)) {
    tail = `/${head.split('/').pop()}${tail}`;
    head = dirname(head);
  }
  const real = realpathSync(head);
  return (real === '/' ? '' : real) + tail;
}
