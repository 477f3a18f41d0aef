import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { run, runOk } from './process.js';

// The pod's network, played with two network namespaces: `pod` (where init, proxy and app run) and `out`
// (the outside world, where the fake provider listens), joined by a veth pair. The pod reaches the
// providers' real host names through /etc/netns/<pod>/hosts, which `ip netns exec` bind-mounts over
// /etc/hosts. Names carry the creating process's id so concurrent runs never collide and a crashed run's
// leftovers can be told apart from a live run's.

const IP = '/usr/sbin/ip';
const NAME = /^aig-(pod|out)-(\d+)$/;

export interface PodNetwork {
  readonly pod: string;
  readonly out: string;
  /** The pod's address (its side of the veth); what the outside sees connections come from. */
  readonly podAddr: string;
  /** The outside world's address; every mapped host name resolves to it. */
  readonly outAddr: string;
  readonly podAddr6: string;
  readonly outAddr6: string;
  destroy(): Promise<void>;
}

export interface PodNetworkOptions {
  /** Host names the pod resolves to the outside world's address (the providers', plus a non-AI host). */
  hosts: readonly string[];
  /** Also map the host names to the outside's IPv6 address (AAAA-style entries in the hosts file). */
  mapIpv6?: boolean;
}

// Private addresses used only between our own two namespaces; nothing else ever sees them.
const POD_ADDR = '10.200.0.2';
const OUT_ADDR = '10.200.0.1';
const POD_ADDR6 = 'fd00:a16e:55::2';
const OUT_ADDR6 = 'fd00:a16e:55::1';

/** The argv that runs `argv` inside namespace `ns` (with its /etc/netns files bound over /etc). */
export function netnsExec(ns: string, argv: readonly string[]): [string, string[]] {
  return [IP, ['netns', 'exec', ns, ...argv]];
}

export function hostsFileText(hosts: readonly string[], addr4: string, addr6: string | undefined): string {
  const lines = ['127.0.0.1 localhost', '::1 localhost ip6-localhost ip6-loopback', `${addr4} ${hosts.join(' ')}`];
  if (addr6) lines.push(`${addr6} ${hosts.join(' ')}`);
  return lines.join('\n') + '\n';
}

export async function createPodNetwork(opts: PodNetworkOptions): Promise<PodNetwork> {
  await cleanupStaleNamespaces();
  const pod = `aig-pod-${process.pid}`;
  const out = `aig-out-${process.pid}`;
  const net: PodNetwork = {
    pod,
    out,
    podAddr: POD_ADDR,
    outAddr: OUT_ADDR,
    podAddr6: POD_ADDR6,
    outAddr6: OUT_ADDR6,
    destroy: () => destroyNamespaces([pod, out]),
  };
  // This process's own names, left by an earlier test file of the same worker that could not clean up.
  await destroyNamespaces([pod, out]);
  try {
    await runOk(IP, ['netns', 'add', pod]);
    await runOk(IP, ['netns', 'add', out]);
    // Created straight inside the namespaces: no interface name ever appears in the host's namespace.
    await runOk(IP, ['link', 'add', 'name', 'eth0', 'netns', pod, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', out]);
    for (const [ns, addr, addr6] of [
      [pod, POD_ADDR, POD_ADDR6],
      [out, OUT_ADDR, OUT_ADDR6],
    ] as const) {
      await runOk(IP, ['-n', ns, 'addr', 'add', `${addr}/30`, 'dev', 'eth0']);
      // nodad: the address is usable at once instead of after duplicate address detection (~1-2 s).
      await runOk(IP, ['-n', ns, '-6', 'addr', 'add', `${addr6}/64`, 'dev', 'eth0', 'nodad']);
      await runOk(IP, ['-n', ns, 'link', 'set', 'lo', 'up']);
      await runOk(IP, ['-n', ns, 'link', 'set', 'eth0', 'up']);
    }
    await runOk(IP, ['-n', pod, 'route', 'add', 'default', 'via', OUT_ADDR]);
    await runOk(IP, ['-n', pod, '-6', 'route', 'add', 'default', 'via', OUT_ADDR6]);
    mkdirSync(`/etc/netns/${pod}`, { recursive: true });
    writeFileSync(`/etc/netns/${pod}/hosts`, hostsFileText(opts.hosts, OUT_ADDR, opts.mapIpv6 ? OUT_ADDR6 : undefined));
  } catch (err) {
    await net.destroy();
    throw err;
  }
  return net;
}

/** Kills what still runs inside (by pid), deletes the namespaces and their /etc/netns files. Never throws. */
async function destroyNamespaces(names: readonly string[]): Promise<void> {
  for (const ns of names) {
    const pids = await run(IP, ['netns', 'pids', ns]).catch(() => undefined);
    for (const pid of (pids?.stdout ?? '').split(/\s+/).filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await run(IP, ['netns', 'del', ns]).catch(() => undefined);
    rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes namespaces of this harness left by runs whose process is gone (a crash, a killed test run). */
export async function cleanupStaleNamespaces(): Promise<string[]> {
  const listed = (await runOk(IP, ['netns', 'list'])).split('\n').map((l) => l.split(' ')[0] ?? '');
  let etc: string[] = [];
  try {
    etc = readdirSync('/etc/netns');
  } catch {
    // no /etc/netns at all
  }
  const stale = [...new Set([...listed, ...etc])].filter((name) => {
    const m = NAME.exec(name);
    return m !== null && !alive(Number(m[2]));
  });
  await destroyNamespaces(stale);
  return stale;
}
