#!/usr/bin/env node
// `npm run bench`: aigress beside direct, nginx, mitmproxy and Portkey's gateway, on one fake provider, in one
// run; writes bench/results/<date>.json and BENCHMARKS.md. Not a test: numbers, not assertions.
//
//   node bench/run.js [--quick] [--runs N] [--no-write] [--only direct,aigress,...]
//
// Outside: installs missing peers (apt-get, npm --no-save into bench/.peers), creates a network namespace whose
// /etc/hosts sends api.openai.com to 127.0.0.1, and re-runs itself inside it (`--inside`), so the real
// `aigress proxy` process resolves the provider by name to the fake one and nothing collides with the host's
// ports. Needs root (ip netns), as the e2e suite does.

import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, freemem, tmpdir, totalmem } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { measure } from './measure.js';
import { installPeers } from './peers.js';
import { HOST } from './pki.js';
import { renderMarkdown } from './report.js';

const ROOT = join(fileURLToPath(import.meta.url), '../..');

function parseArgs(argv) {
  const a = { quick: false, inside: false, write: true, runs: undefined, only: undefined, state: undefined, render: undefined };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    if (k === '--quick') a.quick = true;
    else if (k === '--inside') a.inside = true;
    else if (k === '--no-write') a.write = false;
    else if (k === '--runs') a.runs = Number(argv[++i]);
    else if (k === '--only') a.only = argv[++i].split(',');
    else if (k === '--state') a.state = argv[++i];
    else if (k === '--render') a.render = argv[++i];
    else if (k === '--help' || k === '-h') {
      console.log('usage: node bench/run.js [--quick] [--runs N] [--no-write] [--only direct,aigress,aigress-node24,nginx,mitmproxy,portkey]');
      console.log('       node bench/run.js --render bench/results/FILE.json   (BENCHMARKS.md again from a results file)');
      process.exit(0);
    } else {
      console.error(`bench: unknown argument '${k}' (see --help)`);
      process.exit(2);
    }
  }
  if (a.runs !== undefined && !(Number.isInteger(a.runs) && a.runs >= 1)) {
    console.error('bench: --runs: expected a whole number ≥ 1');
    process.exit(2);
  }
  return a;
}

function sh(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${(r.stderr || r.stdout).trim()}`);
  return r.stdout;
}

async function outside(args) {
  if (process.getuid?.() !== 0) {
    console.error('bench: needs root: the paths run in their own network namespace (ip netns), as the e2e suite does');
    process.exit(2);
  }
  for (const f of ['dist/sidecar/proxy/run.js', 'dist/webhook/server.js']) {
    try {
      readFileSync(join(ROOT, f));
    } catch {
      console.error(`bench: ${f} missing: run \`npm run -s build\` first (npm run bench does)`);
      process.exit(2);
    }
  }
  const log = (m) => console.log(`bench: ${m}`);
  if (spawnSync('sh', ['-c', 'command -v ip']).status !== 0) {
    log('installing iproute2 (ip netns) from Debian…');
    spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'iproute2'], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  }
  const peers = installPeers(ROOT, log);
  for (const [name, p] of Object.entries(peers)) log(p.ok ? `${name} ${p.version}` : `${name} skipped: ${p.reason}`);

  const ns = `aigress-bench-${process.pid}`;
  const work = mkdtempSync(join(tmpdir(), 'aigress-bench-'));
  const statePath = join(work, 'state.json');
  const machine = {
    nproc: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    freeGiB: Math.round((freemem() / 2 ** 30) * 10) / 10,
    kernel: sh('uname', ['-r']).trim(),
    node: process.version,
  };
  writeFileSync(statePath, JSON.stringify({ peers, machine, work, command: `npm run bench${args.quick ? ' -- --quick' : ''}` }));
  mkdirSync(`/etc/netns/${ns}`, { recursive: true });
  writeFileSync(`/etc/netns/${ns}/hosts`, `127.0.0.1 localhost\n127.0.0.1 ${HOST}\n`);
  let code = 1;
  try {
    sh('ip', ['netns', 'add', ns]);
    sh('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up']);
    const childArgs = ['netns', 'exec', ns, process.execPath, fileURLToPath(import.meta.url), '--inside', '--state', statePath, ...process.argv.slice(2)];
    const child = spawn('ip', childArgs, { stdio: 'inherit' });
    const stop = () => child.kill('SIGTERM');
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    code = await new Promise((r) => child.once('exit', (c) => r(c ?? 1)));
  } finally {
    spawnSync('ip', ['netns', 'del', ns]);
    rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
    if (code === 0) rmSync(work, { recursive: true, force: true });
    else console.error(`bench: logs of the paths kept in ${work}`);
  }
  process.exit(code);
}

async function inside(args) {
  const state = JSON.parse(readFileSync(args.state, 'utf8'));
  const results = await measure({ root: ROOT, dir: state.work, peers: state.peers, quick: args.quick, runs: args.runs, only: args.only });
  results.machine = state.machine;
  results.command = state.command;
  const stamp = results.finishedAt.replace(/[:]/g, '-').replace(/\..*$/, '');
  if (!args.write) {
    console.log(JSON.stringify(results, null, 2));
    return;
  }
  mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
  const jsonPath = join(ROOT, `bench/results/${stamp}${args.quick ? '-quick' : ''}.json`);
  writeFileSync(jsonPath, JSON.stringify(results, null, 2) + '\n');
  const previous = readdirSync(join(ROOT, 'bench/results')).filter((f) => f.endsWith('.json')).length;
  writeFileSync(join(ROOT, 'BENCHMARKS.md'), renderMarkdown(results, { jsonPath: jsonPath.slice(ROOT.length + 1), runsOnFile: previous }));
  console.log(`bench: wrote ${jsonPath.slice(ROOT.length + 1)} and BENCHMARKS.md`);
}

function render(file) {
  let results;
  try {
    results = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    console.error(`bench: --render ${file}: ${err.code === 'ENOENT' ? 'no such file' : `not a results file (${err.message})`}`);
    process.exit(2);
  }
  const rel = relative(ROOT, resolve(file));
  writeFileSync(join(ROOT, 'BENCHMARKS.md'), renderMarkdown(results, { jsonPath: rel }));
  console.log(`bench: BENCHMARKS.md rendered from ${rel}`);
}

const args = parseArgs(process.argv.slice(2));
if (args.render) render(args.render);
else if (args.inside) await inside(args);
else await outside(args);
