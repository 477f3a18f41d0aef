import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OPENAI_HOST, PLAIN_HOST } from './support/fake-provider.js';
import { metricSum } from './support/metrics.js';
import { netnsExec } from './support/netns.js';
import { CURL, REPO_ROOT } from './support/paths.js';
import { findContainer } from './support/pod-spec.js';
import { APP, INIT, PodSession } from './support/pod-session.js';
import { Background, run, runOk } from './support/process.js';
import { describeRoot } from './support/require-root.js';

// Issue #12 in the pod namespaces: what a pod of a real cluster does besides AI calls keeps working once it is
// injected. The pod is injected with an Istio and a Linkerd sidecar in its spec (so `aigress inject` exempts both
// mesh UIDs), a Kubernetes API address in the injection config, and more captured ports. Outside, a second and a
// third address play an internal service (TLS on 443 and 8443, a server-first protocol on 5432) and the API
// server; the meshes' nat rules are reproduced by hand, with a stand-in forwarding proxy as the mesh's UID.

const KEYS = { openai: 'sk-e2e-real-openai-0000', anthropic: 'sk-ant-e2e-real-0000' };
const SERVICE = '10.201.0.1';
const API = '10.202.0.1';
const NODE = process.execPath;
const ADDON = join(REPO_ROOT, 'build/Release/original_dst.node');

// TLS servers answer one HTTP request with where they are and what SNI they got; 5432 speaks first.
const OUTSIDE = `
const net = require('node:net'), tls = require('node:tls'), fs = require('node:fs');
const [cert, key] = process.argv.slice(1).map((f) => fs.readFileSync(f));
let pending = 0;
const up = () => { if (--pending === 0) console.log('ready'); };
const https = (host, port, name) => { pending++;
  tls.createServer({ cert, key }, (s) => { s.once('data', () => {
    const body = name + ' ' + host + ':' + port + ' sni=' + (s.servername || 'none') + '\\n';
    s.end('HTTP/1.1 200 OK\\r\\ncontent-length: ' + body.length + '\\r\\nconnection: close\\r\\n\\r\\n' + body); }); })
  .listen({ host, port }, up); };
https('${SERVICE}', 443, 'service'); https('${SERVICE}', 8443, 'service'); https('${API}', 443, 'kube-api');
pending++;
net.createServer((s) => { s.write('HELLO ${SERVICE}:5432\\n'); s.once('data', (d) => s.end('ECHO ' + d)); }).listen({ host: '${SERVICE}', port: 5432 }, up);`;

// A client for the server-first protocol: waits for the greeting, answers, prints both lines.
const SERVER_FIRST_CLIENT = `
const s = require('node:net').connect({ host: '${SERVICE}', port: 5432, timeout: 8000 });
let got = ''; s.on('data', (d) => { got += d; if (!got.includes('ECHO')) s.write('PING\\n'); });
s.on('end', () => console.log(got.trim())); s.on('timeout', () => { console.log('timeout: ' + got); s.destroy(); });
s.on('error', (e) => console.log('error ' + e.code));`;

// The mesh's proxy, played: accepts what the mesh's REDIRECT sends it, reads where it was going (the same
// SO_ORIGINAL_DST aigress reads) and forwards it there, logging each forward.
const MESH_PROXY = `
const net = require('node:net');
const { originalDst } = require(process.argv[1]);
net.createServer((c) => { const o = originalDst(c._handle.fd);
  console.log('FWD ' + o.address + ':' + o.port);
  const u = net.connect({ host: o.address, port: o.port }); c.pipe(u); u.pipe(c);
  u.on('error', () => c.destroy()); c.on('error', () => u.destroy());
}).listen({ host: '127.0.0.1', port: Number(process.argv[2]) }, () => console.log('ready'));`;

interface MeshCase {
  name: string;
  uid: number;
  port: number;
  chains: string[];
  rules: string[];
}

// istio-init's (iptables mode) and Linkerd proxy-init's nat OUTPUT rules, as their docs and iptables-save show.
const MESHES: MeshCase[] = [
  {
    name: 'istio',
    uid: 1337,
    port: 15001,
    chains: ['ISTIO_OUTPUT', 'ISTIO_REDIRECT'],
    rules: [
      '-A ISTIO_OUTPUT -s 127.0.0.6/32 -o lo -j RETURN',
      '-A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN',
      '-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN',
      '-A ISTIO_OUTPUT -o lo -m owner ! --gid-owner 1337 -j RETURN',
      '-A ISTIO_OUTPUT -m owner --gid-owner 1337 -j RETURN',
      '-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN',
      '-A ISTIO_OUTPUT -j ISTIO_REDIRECT',
      '-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001',
      '-A OUTPUT -p tcp -j ISTIO_OUTPUT',
    ],
  },
  {
    name: 'linkerd',
    uid: 2102,
    port: 4140,
    chains: ['PROXY_INIT_OUTPUT', 'PROXY_INIT_REDIRECT'],
    rules: [
      '-A PROXY_INIT_REDIRECT -p tcp -j REDIRECT --to-ports 4140',
      '-A PROXY_INIT_OUTPUT -m owner --uid-owner 2102 -j RETURN',
      '-A PROXY_INIT_OUTPUT -o lo -j RETURN',
      '-A PROXY_INIT_OUTPUT -p tcp -j PROXY_INIT_REDIRECT',
      '-A OUTPUT -j PROXY_INIT_OUTPUT',
    ],
  },
];

describeRoot('a real cluster\'s pod: original destinations, the Kubernetes API, meshes, private roots', () => {
  // The internal service's certificate is its own root (a private CA the app's image would trust): it reaches the
  // app's bundle only through the proxy's --extra-ca-file.
  const caDir = join(tmpdir(), `aig-e2e-real-ca-${process.pid}`);
  const cert = join(caDir, 'internal-ca.crt');
  const key = join(caDir, 'internal-ca.key');
  const session = new PodSession({
    tmpPrefix: 'aig-e2e-real-',
    hosts: [OPENAI_HOST, PLAIN_HOST],
    keys: KEYS,
    app: {
      annotations: { 'aigress.io/include-outbound-ports': '5432,8443' },
      extraContainers: ['istio-proxy', 'linkerd-proxy'],
      capture: { kubernetesApiAddress: API },
      proxyArgs: ['--extra-ca-file', cert],
    },
  });
  let outside: Background;
  // A third namespace behind the outside one holds the service and API addresses (the fake provider holds the
  // outside's ports 80 and 443 on every address).
  const svc = `aig-svc-${process.pid}`;

  const ns = (): string => session.net.pod;
  const inPod = (argv: readonly string[]): Promise<string> => {
    const [cmd, args] = netnsExec(ns(), argv);
    return runOk(cmd, args);
  };
  const app = (argv: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> =>
    session.pod.exec(APP, argv, { timeoutMs: 20_000 });
  const routes = async (): Promise<Record<string, number>> => {
    const m = await session.metrics();
    const out: Record<string, number> = {};
    for (const r of ['mediated', 'passthrough_name', 'passthrough_address', 'refused']) out[r] = metricSum(m, 'aigress_connections_total', { route: r });
    return out;
  };
  const delta = (a: Record<string, number>, b: Record<string, number>): Record<string, number> =>
    Object.fromEntries(Object.keys(b).map((k) => [k, (b[k] ?? 0) - (a[k] ?? 0)]).filter(([, v]) => v !== 0));
  /** nat OUTPUT's rules in order, from the backend aigress init chose (nft: nothing was there before it). */
  const natOutput = async (): Promise<string[]> => (await inPod(['iptables-nft-save', '-t', 'nat'])).split('\n').filter((l) => l.startsWith('-A OUTPUT '));

  beforeAll(async () => {
    rmSync(caDir, { recursive: true, force: true });
    mkdirSync(caDir, { mode: 0o755 });
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=internal private CA', '-days', '1',
      '-addext', `subjectAltName=DNS:internal.example,IP:${SERVICE}`, '-keyout', key, '-out', cert], { stdio: 'ignore' });
    await session.start();
    const out = session.net.out;
    await run('ip', ['netns', 'del', svc]);
    await runOk('ip', ['netns', 'add', svc]);
    await runOk('ip', ['link', 'add', 'name', 'svc0', 'netns', out, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', svc]);
    await runOk('ip', ['-n', out, 'addr', 'add', '10.203.0.1/30', 'dev', 'svc0']);
    await runOk('ip', ['-n', svc, 'addr', 'add', '10.203.0.2/30', 'dev', 'eth0']);
    for (const [n, dev] of [[out, 'svc0'], [svc, 'eth0'], [svc, 'lo']] as const) await runOk('ip', ['-n', n, 'link', 'set', dev, 'up']);
    for (const addr of [SERVICE, API]) {
      await runOk('ip', ['-n', svc, 'addr', 'add', `${addr}/32`, 'dev', 'lo']);
      await runOk('ip', ['-n', out, 'route', 'add', `${addr}/32`, 'via', '10.203.0.2']);
    }
    await runOk('ip', ['-n', svc, 'route', 'add', 'default', 'via', '10.203.0.1']);
    await runOk('ip', ['netns', 'exec', out, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    const [cmd, args] = netnsExec(svc, [NODE, '-e', OUTSIDE, cert, key]);
    outside = new Background(cmd, args);
    await outside.waitFor('outside servers', () => outside.stdout.includes('ready'), 10_000);
    await session.startProxy();
  }, 60_000);
  afterAll(async () => {
    await outside?.stop();
    await run('ip', ['netns', 'del', svc]);
    await session.stop();
    rmSync(caDir, { recursive: true, force: true });
  });

  it('the injected init container exempts both meshes\' UIDs and leaves the Kubernetes API out of capture', () => {
    const args = findContainer(session.files.pod, INIT).args ?? [];
    expect(args[args.indexOf('--exclude-uids') + 1]).toBe('1337,2102');
    expect(args[args.indexOf('--exclude-outbound-cidrs') + 1]).toBe(`${API}/32`);
  });

  it('the Kubernetes API, reached by IP with TLS and no SNI, is not captured at all', async () => {
    const before = await routes();
    const r = await app([CURL, '-sS', '-k', '--fail', `https://${API}/version`]);
    expect(r.stdout).toBe(`kube-api ${API}:443 sni=none\n`);
    expect(delta(before, await routes())).toEqual({});
  });

  it('TLS without SNI to a captured IP passes through to its original IP:port (counted by address)', async () => {
    const before = await routes();
    const r = await app([CURL, '-sS', '-k', '--fail', `https://${SERVICE}/`]);
    expect(r.stdout, r.stderr).toBe(`service ${SERVICE}:443 sni=none\n`);
    expect(delta(before, await routes())).toEqual({ passthrough_address: 1 });
  });

  it('a server-first protocol on a captured port gets its greeting from the original destination', async () => {
    const before = await routes();
    const r = await app([NODE, '-e', SERVER_FIRST_CLIENT]);
    expect(r.stdout.trim()).toBe(`HELLO ${SERVICE}:5432\nECHO PING`);
    expect(delta(before, await routes())).toEqual({ passthrough_address: 1 });
  });

  it('TLS with a non-AI name to a non-443 captured port reaches that port (no port guessing)', async () => {
    const before = await routes();
    const r = await app([CURL, '-sS', '-k', '--fail', '--resolve', `internal.example:8443:${SERVICE}`, 'https://internal.example:8443/']);
    expect(r.stdout, r.stderr).toBe(`service ${SERVICE}:8443 sni=internal.example\n`);
    expect(delta(before, await routes())).toEqual({ passthrough_name: 1 });
  });

  it('pass-through by name dials the address the app connected to, not a re-resolution of the name', async () => {
    // The pod's hosts file says example.org is the fake provider (10.200.0.1); the app connects to 10.201.0.1.
    const before = await routes();
    const r = await app([CURL, '-sS', '-k', '--fail', '--resolve', `${PLAIN_HOST}:443:${SERVICE}`, `https://${PLAIN_HOST}/`]);
    expect(r.stdout, r.stderr).toBe(`service ${SERVICE}:443 sni=${PLAIN_HOST}\n`);
    expect(delta(before, await routes())).toEqual({ passthrough_name: 1 });
  });

  it('an app reaches an internal service under a private CA with the injected trust env (the extra root is in the bundle)', async () => {
    // curl uses CURL_CA_BUNDLE / SSL_CERT_FILE from the injected spec: the bundle, not the image's store.
    const r = await app([CURL, '-sS', '--fail', '--resolve', `internal.example:8443:${SERVICE}`, 'https://internal.example:8443/ca']);
    expect(r.stdout, r.stderr).toBe(`service ${SERVICE}:8443 sni=internal.example\n`);
    // and Python requests (REQUESTS_CA_BUNDLE) too
    const py = await app(['/usr/bin/python3', '-c', `import requests; print(requests.get('https://${SERVICE}/py').text, end='')`]);
    expect(py.stdout, py.stderr).toBe(`service ${SERVICE}:443 sni=none\n`);
  });

  for (const mesh of MESHES) {
    describe(`with ${mesh.name}'s rules and a stand-in proxy as UID ${mesh.uid}`, () => {
      let proxy: Background;
      const meshInput = (rules: readonly string[]): string => ['*nat', ...mesh.chains.map((c) => `:${c} - [0:0]`), ...rules, 'COMMIT', ''].join('\n');
      const applyMesh = async (): Promise<void> => {
        const file = join(session.dir, `${mesh.name}.rules`);
        writeFileSync(file, meshInput(mesh.rules));
        await inPod(['iptables-nft-restore', '--noflush', file]);
      };
      const removeMesh = async (): Promise<void> => {
        const jump = mesh.rules.find((r) => r.startsWith('-A OUTPUT '))!.replace('-A ', '-D ');
        const file = join(session.dir, `${mesh.name}.cleanup`);
        writeFileSync(file, meshInput([jump, ...mesh.chains.map((c) => `-X ${c}`)]));
        await inPod(['iptables-nft-restore', '--noflush', file]);
      };
      const rerunInit = async (): Promise<void> => {
        const init = session.pod.start(INIT);
        const status = await init.exited;
        expect({ status, stderr: init.stderr }).toMatchObject({ status: { code: 0 } });
      };

      beforeAll(async () => {
        const [cmd, args] = netnsExec(session.net.pod, ['setpriv', `--reuid=${mesh.uid}`, `--regid=${mesh.uid}`, '--clear-groups', NODE, '-e', MESH_PROXY, ADDON, String(mesh.port)]);
        proxy = new Background(cmd, args);
        await proxy.waitFor(`${mesh.name} stand-in`, () => proxy.stdout.includes('ready'), 10_000);
      });
      afterAll(async () => {
        await removeMesh().catch(() => undefined);
        await proxy?.stop();
      });

      it('aigress stays first in nat OUTPUT when the mesh\'s init runs after it, and when it ran before', async () => {
        await applyMesh(); // after aigress-init: the mesh appends its jump
        let out = await natOutput();
        expect(out[0]).toMatch(/-j AIGRESS_OUTPUT$/);
        expect(out.some((l) => l.endsWith(`-j ${mesh.chains[0]}`))).toBe(true);
        // Before aigress-init: remove ours, the mesh's jump is alone, then aigress-init runs.
        await run(...netnsExec(ns(), [NODE, join(REPO_ROOT, 'bin/aigress.js'), 'init', '--cleanup']));
        expect((await natOutput())[0]).toMatch(new RegExp(`-j ${mesh.chains[0]}$`));
        await rerunInit();
        out = await natOutput();
        expect(out[0]).toMatch(/-j AIGRESS_OUTPUT$/);
        // A second run (container restart) changes nothing.
        await rerunInit();
        expect(await natOutput()).toEqual(out);
        expect(out.filter((l) => l.endsWith('-j AIGRESS_OUTPUT'))).toHaveLength(1);
      });

      it('the app\'s AI call is mediated exactly once, and aigress\'s upstream flows through the mesh', async () => {
        const before = await routes();
        const requestsBefore = metricSum(await session.metrics(), 'aigress_requests_total');
        const mark = session.fake.mark();
        const fwdBefore = proxy.stdout.split('\n').filter((l) => l.startsWith('FWD ')).length;
        const body = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: `mesh ${mesh.name}` }] });
        const r = await app([CURL, '-sS', '--fail', `https://${OPENAI_HOST}/v1/chat/completions`, '-H', 'content-type: application/json', '-H', `authorization: Bearer ${KEYS.openai}`, '-d', body]);
        expect(r.stderr).toBe('');
        expect(JSON.parse(r.stdout)).toHaveProperty('choices');
        expect(session.fake.requestsSince(mark)).toHaveLength(1);
        expect(await session.waitMetric('aigress_requests_total', {}, requestsBefore + 1)).toBe(requestsBefore + 1);
        expect(delta(before, await routes())).toEqual({ mediated: 1 });
        // aigress (UID 1500) dialled the provider; the mesh caught that and forwarded it: once.
        const fwd = proxy.stdout.split('\n').filter((l) => l.startsWith('FWD ')).slice(fwdBefore);
        expect(fwd).toEqual([`FWD ${session.net.outAddr}:443`]);
      });

      it('non-AI traffic still works, through aigress and then the mesh', async () => {
        const before = await routes();
        const r = await app([CURL, '-sS', '--fail', `http://${PLAIN_HOST}/mesh`]);
        expect(r.stdout).toBe(`fake ${PLAIN_HOST}: GET /mesh\n`);
        expect(delta(before, await routes())).toEqual({ passthrough_name: 1 });
        // and a server-first protocol, with both in the path
        const s = await app([NODE, '-e', SERVER_FIRST_CLIENT]);
        expect(s.stdout.trim()).toBe(`HELLO ${SERVICE}:5432\nECHO PING`);
      });
    });
  }
});
