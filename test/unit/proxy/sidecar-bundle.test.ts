import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { createCA } from '../../../shared/pki.js';
import { policyYaml } from './support.js';

// The sidecar image's code (scripts/bundle-sidecar.mjs, docs/image.md) run as the image runs it: the bundle's
// own entry, no node_modules, no dist/. esbuild moves the proxy into a chunks/ file, so this is where a lookup
// of the SO_ORIGINAL_DST addon "beside this module" silently missed and the proxy fell back to name-only routing.

const ROOT = join(import.meta.dirname, '../../..');
const ADDON = join(ROOT, 'build/Release/original_dst.node');
const linuxWithAddon = process.platform === 'linux' && existsSync(ADDON);
let dir: string;
let out: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'aigress-sidecar-bundle-'));
  out = join(dir, 'bundle');
  execFileSync(process.execPath, [join(ROOT, 'scripts/bundle-sidecar.mjs'), out], { stdio: ['ignore', 'ignore', 'inherit'] });
  const ca = await createCA('sidecar bundle test CA', 1);
  mkdirSync(join(dir, 'ca'));
  writeFileSync(join(dir, 'ca', 'tls.crt'), ca.certPem);
  writeFileSync(join(dir, 'ca', 'tls.key'), ca.keyPem);
  writeFileSync(join(dir, 'policy.yaml'), policyYaml());
}, 120_000);

/** Starts the bundled proxy, returns its log lines up to "proxy listening", then stops it. */
async function startUpLog(env: NodeJS.ProcessEnv): Promise<Array<Record<string, unknown>>> {
  const child = spawn(
    process.execPath,
    [join(out, 'aigress.mjs'), 'proxy', '--policy', join(dir, 'policy.yaml'), '--ca-dir', join(dir, 'ca'), '--bundle-dir', join(dir, 'trust'), '--capture-port', '0', '--admin-port', '0', '--listen-address', '127.0.0.1'],
    { stdio: ['ignore', 'pipe', 'pipe'], cwd: dir, env },
  );
  let text = '';
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  try {
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (c: Buffer) => {
        text += c.toString();
        if (text.includes('"proxy listening"')) resolve();
      });
      child.once('exit', (code) => reject(new Error(`bundled proxy exited ${code}: ${stderr}`)));
    });
  } finally {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
  return text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

function withoutAddonOverride(): NodeJS.ProcessEnv {
  const { AIGRESS_ORIGINAL_DST_ADDON: _ignored, ...env } = process.env;
  return env;
}

describe('the sidecar bundle', () => {
  it('keeps the proxy in a chunk and the addon at the top, where the Dockerfile copies it from', () => {
    expect(readdirSync(out)).toContain('aigress.mjs');
    if (linuxWithAddon) expect(readdirSync(out)).toContain('original_dst.node');
    expect(readdirSync(join(out, 'chunks')).length).toBeGreaterThan(0);
    expect(readdirSync(join(out, 'chunks'))).not.toContain('original_dst.node');
  });

  it.skipIf(!linuxWithAddon)('a proxy started from the bundle loads the SO_ORIGINAL_DST addon beside the entry', async () => {
    const lines = await startUpLog(withoutAddonOverride());
    const addonLine = lines.find((l) => typeof l.msg === 'string' && l.msg.startsWith('original destinations'));
    expect(addonLine, JSON.stringify(lines)).toBeDefined();
    expect(addonLine!.msg).toMatch(/SO_ORIGINAL_DST available/);
    expect(addonLine!.addon).toBe(join(out, 'original_dst.node'));
  });
  if (!linuxWithAddon) console.log('addon test skipped: not Linux or build/Release/original_dst.node not built (npm run build:native)');
});
