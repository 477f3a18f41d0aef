import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderRules, type Family } from '../../sidecar/init/rules.js';
import { parseInitFlags, type InitFlags } from '../../sidecar/init/settings.js';
import { describeRoot } from './support/require-root.js';

// `aigress init` for real: a pod namespace joined by a veth pair to an "outside" namespace. Listeners tell
// which side a connection reached: the pod's capture port (127.0.0.1 / ::1 :14001), the pod's own loopback,
// or the outside host. The app is played by `node` run under setpriv as a given UID/GID.

const run = promisify(execFile);
const root = fileURLToPath(new URL('../../', import.meta.url));
const cli = `${root}bin/aigress.js`;
const node = process.execPath;

// Answers every connection with "<name> <local address> <local port>", so the client learns where it landed.
const SERVER = `
const net = require('node:net');
const [name, hosts, ports] = process.argv.slice(1);
let pending = 0;
for (const host of hosts.split(',')) for (const port of ports.split(',')) {
  pending++;
  net.createServer((s) => s.end(name + ' ' + s.localAddress + ' ' + s.localPort + '\\n'))
    .listen({ host, port: Number(port), ipv6Only: true }, () => { if (--pending === 0) console.log('ready'); });
}`;

const CLIENT = `
const net = require('node:net');
const [host, port] = process.argv.slice(1);
const s = net.connect({ host, port: Number(port), timeout: 3000 });
let data = '';
s.on('data', (d) => (data += d));
s.on('end', () => console.log(data.trim()));
s.on('timeout', () => { console.log('timeout'); s.destroy(); });
s.on('error', (e) => console.log('error ' + e.code));`;

const FLAGS: InitFlags = {
  includeOutboundPorts: '80,443,8080',
  excludeOutboundPorts: '8080',
  excludeOutboundCidrs: '10.77.0.3/32,fd77::3/128',
};
const CLI_FLAGS = ['--include-outbound-ports', '80,443,8080', '--exclude-outbound-ports', '8080', '--exclude-outbound-cidrs', '10.77.0.3/32,fd77::3/128'];

async function sh(cmd: string, args: string[]): Promise<string> {
  return (await run(cmd, args, { cwd: '/' })).stdout;
}

async function inNs(ns: string, cmd: string, args: string[]): Promise<string> {
  return sh('ip', ['netns', 'exec', ns, cmd, ...args]);
}

async function aigressInit(ns: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run('ip', ['netns', 'exec', ns, node, cli, 'init', ...args], { cwd: '/' });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

function startServer(ns: string, name: string, hosts: string, ports: string): Promise<ChildProcess> {
  const child = spawn('ip', ['netns', 'exec', ns, node, '-e', SERVER, name, hosts, ports], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      if (d.toString().includes('ready')) resolve(child);
    });
    child.on('exit', (code) => reject(new Error(`${name} server exited with ${code}`)));
  });
}

/** Where a TCP connection from `uid`/`gid` in the pod to host:port lands (the answering listener's banner). */
async function connect(ns: string, uid: number, gid: number, host: string, port: number): Promise<string> {
  const out = await inNs(ns, 'setpriv', [`--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', node, '-e', CLIENT, host, String(port)]);
  return out.trim();
}

/** Every table of both backends and both families, with comments and counters dropped. */
async function snapshot(ns: string): Promise<string> {
  const parts: string[] = [];
  for (const bin of ['iptables-legacy-save', 'iptables-nft-save', 'ip6tables-legacy-save', 'ip6tables-nft-save']) {
    const text = await inNs(ns, bin, []);
    const lines = text.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
    parts.push(`## ${bin}`, ...lines.map((l) => l.replace(/\[\d+:\d+\]/g, '[0:0]')));
  }
  return parts.join('\n');
}

// The rendered jump is inserted first (`-I OUTPUT 1 …`); iptables-save prints it back appended (`-A OUTPUT …`).
const ruleLines = (text: string): string[] =>
  text
    .split('\n')
    .map((l) => l.replace(/^-I OUTPUT 1 /, '-A OUTPUT '))
    .filter((l) => l.startsWith('-A '))
    .sort();

const available = (bin: string): boolean => (process.env.PATH ?? '').split(':').some((d) => existsSync(`${d}/${bin}`));

describeRoot('aigress init in a network namespace', () => {
  beforeAll(() => {
    if (!existsSync(`${root}dist/cli/main.js`)) throw new Error('dist/ is missing: run `npx tsc -p tsconfig.build.json` first');
  });

  const modes = (['nft', 'legacy'] as const).filter((m) => available(`iptables-${m}-restore`) && available(`ip6tables-${m}-restore`));
  it('has at least one iptables backend to test', () => expect(modes.length).toBeGreaterThan(0));

  for (const mode of modes) {
    describe(`iptables-${mode}`, () => {
      const pod = `aig-init-${process.pid}-${mode}`;
      const out = `${pod}-out`;
      const servers: ChildProcess[] = [];
      const save = (family: Family): Promise<string> => inNs(pod, `${family === 6 ? 'ip6tables' : 'iptables'}-${mode}-save`, ['-t', 'nat']);
      let before = '';

      beforeAll(async () => {
        for (const ns of [pod, out]) await sh('ip', ['netns', 'add', ns]);
        const a = `aip${mode[0]}${process.pid}`.slice(0, 15);
        const b = `aio${mode[0]}${process.pid}`.slice(0, 15);
        await sh('ip', ['link', 'add', a, 'netns', pod, 'type', 'veth', 'peer', 'name', b, 'netns', out]);
        for (const [ns, dev, v4s, v6s] of [
          [pod, a, ['10.77.0.1/24'], ['fd77::1/64']],
          [out, b, ['10.77.0.2/24', '10.77.0.3/24'], ['fd77::2/64', 'fd77::3/64']],
        ] as const) {
          for (const addr of v4s) await inNs(ns, 'ip', ['addr', 'add', addr, 'dev', dev]);
          for (const addr of v6s) await inNs(ns, 'ip', ['-6', 'addr', 'add', addr, 'dev', dev, 'nodad']);
          await inNs(ns, 'ip', ['link', 'set', dev, 'up']);
          await inNs(ns, 'ip', ['link', 'set', 'lo', 'up']);
        }
        servers.push(await startServer(pod, 'capture', '127.0.0.1,::1', '14001'));
        servers.push(await startServer(pod, 'podlocal', '127.0.0.1', '443'));
        servers.push(await startServer(out, 'outside', '10.77.0.2,10.77.0.3,fd77::2,fd77::3', '80,443,8080,9000'));
      });

      afterAll(async () => {
        for (const s of servers) s.kill();
        for (const ns of [pod, out]) await sh('ip', ['netns', 'del', ns]).catch(() => undefined);
      });

      it('without rules, the app reaches the outside host directly', async () => {
        expect(await connect(pod, 1000, 1000, '10.77.0.2', 443)).toBe('outside 10.77.0.2 443');
        before = await snapshot(pod);
      });

      it('--dry-run prints the rules and changes nothing', async () => {
        const r = await aigressInit(pod, ['--dry-run', '--iptables-mode', mode, ...CLI_FLAGS]);
        expect(r.code).toBe(0);
        expect(r.stdout).toContain(renderRules(parseInitFlags(FLAGS).capture, 4).trimEnd());
        expect(await snapshot(pod)).toBe(before);
      });

      it('installs exactly the rendered rules, with comments and one jump, for IPv4 and IPv6', async () => {
        // nft: auto-detected on a fresh namespace (the default); legacy: forced by the flag.
        const r = await aigressInit(pod, [...(mode === 'legacy' ? ['--iptables-mode', 'legacy'] : []), ...CLI_FLAGS]);
        expect(r.stderr).toBe('');
        expect(r.code).toBe(0);
        expect(r.stdout).toContain(`"mode":"${mode}"`);
        const settings = parseInitFlags(FLAGS).capture;
        for (const family of [4, 6] as Family[]) {
          const saved = await save(family);
          expect(saved).toContain(':AIGRESS_OUTPUT - [0:0]');
          expect(saved).toContain(':AIGRESS_REDIRECT - [0:0]');
          expect(ruleLines(saved)).toEqual(ruleLines(renderRules(settings, family)));
          expect(ruleLines(saved).filter((l) => l.endsWith('-j AIGRESS_OUTPUT'))).toHaveLength(1);
        }
        const other = mode === 'nft' ? 'legacy' : 'nft';
        expect(await inNs(pod, `iptables-${other}-save`, [])).not.toContain('AIGRESS');
      });

      it.each([
        ['app uid 1000 to :443 is captured', 1000, 1000, '10.77.0.2', 443, 'capture 127.0.0.1 14001'],
        ['app uid 1000 to :80 is captured', 1000, 1000, '10.77.0.2', 80, 'capture 127.0.0.1 14001'],
        ['root in the app container is captured', 0, 0, '10.77.0.2', 443, 'capture 127.0.0.1 14001'],
        ['IPv6 to :443 is captured to ::1', 1000, 1000, 'fd77::2', 443, 'capture ::1 14001'],
        ['the proxy (uid 1500) goes out untouched', 1500, 1500, '10.77.0.2', 443, 'outside 10.77.0.2 443'],
        ['the proxy group (gid 1500) goes out untouched', 1000, 1500, '10.77.0.2', 443, 'outside 10.77.0.2 443'],
        ['the proxy over IPv6 goes out untouched', 1500, 1500, 'fd77::2', 443, 'outside fd77::2 443'],
        ['an excluded port wins over an included one', 1000, 1000, '10.77.0.2', 8080, 'outside 10.77.0.2 8080'],
        ['a port not included is not captured', 1000, 1000, '10.77.0.2', 9000, 'outside 10.77.0.2 9000'],
        ['an excluded IPv4 CIDR is not captured', 1000, 1000, '10.77.0.3', 443, 'outside 10.77.0.3 443'],
        ['an excluded IPv6 CIDR is not captured', 1000, 1000, 'fd77::3', 443, 'outside fd77::3 443'],
        ['a loopback destination is not captured', 1000, 1000, '127.0.0.1', 443, 'podlocal 127.0.0.1 443'],
      ] as const)('%s', async (_name, uid, gid, host, port, expected) => {
        expect(await connect(pod, uid, gid, host, port)).toBe(expected);
      });

      it('running again (auto-detecting the backend) changes nothing', async () => {
        const first = await snapshot(pod);
        const r = await aigressInit(pod, CLI_FLAGS);
        expect(r.code).toBe(0);
        expect(r.stdout).toContain(`"mode":"${mode}"`);
        expect(await snapshot(pod)).toBe(first);
      });

      it('--cleanup removes the chains and the jump, and capture stops', async () => {
        const r = await aigressInit(pod, ['--cleanup']);
        expect(r.code).toBe(0);
        const after = await snapshot(pod);
        expect(after).not.toContain('AIGRESS');
        expect(ruleLines(after)).toEqual(ruleLines(before));
        expect(await connect(pod, 1000, 1000, '10.77.0.2', 443)).toBe('outside 10.77.0.2 443');
        // a second cleanup has nothing left to do and still succeeds
        expect((await aigressInit(pod, ['--cleanup', '--iptables-mode', mode])).code).toBe(0);
        expect(await snapshot(pod)).toBe(after);
      });
    });
  }

  it('an iptables failure is one clear line naming the binary, exit 1', async () => {
    const r = await run('setpriv', ['--reuid=1000', '--regid=1000', '--clear-groups', node, cli, 'init', '--iptables-mode', 'nft'], {
      cwd: '/',
    }).then(
      () => ({ code: 0, stderr: '' }),
      (e: { code?: number; stderr?: string }) => ({ code: e.code ?? -1, stderr: e.stderr ?? '' }),
    );
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^aigress: iptables-nft-save -t nat failed \(exit \d+\): .*root/);
  });
});
