import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { createCA } from '../../../shared/pki.js';
import { policyYaml } from './support.js';

// `aigress proxy` as a process: the built CLI (npx tsc -p tsconfig.build.json) started the way the pod starts it.

const BIN = join(import.meta.dirname, '../../../bin/aigress.js');
const built = existsSync(join(import.meta.dirname, '../../../dist/cli/main.js'));
let dir: string;

beforeAll(async () => {
  if (!built) throw new Error('dist/ is missing: run `npx tsc -p tsconfig.build.json` before this test');
  dir = mkdtempSync(join(tmpdir(), 'aigress-cli-'));
  const ca = await createCA('cli test CA', 2);
  mkdirSync(join(dir, 'ca'));
  writeFileSync(join(dir, 'ca', 'ca.crt'), ca.certPem);
  writeFileSync(join(dir, 'ca', 'ca.key'), ca.keyPem);
  writeFileSync(join(dir, 'policy.yaml'), policyYaml());
});

function status(port: number, path: string): Promise<number> {
  return new Promise((resolve) => {
    get({ host: '127.0.0.1', port, path }, (r) => {
      r.resume();
      resolve(r.statusCode ?? 0);
    }).on('error', () => resolve(0));
  });
}

describe('aigress proxy (process)', () => {
  it('becomes ready, then exits 0 on SIGTERM after draining', async () => {
    const child = spawn(process.execPath, [BIN, 'proxy', '--policy', join(dir, 'policy.yaml'), '--ca-dir', join(dir, 'ca'), '--bundle-dir', join(dir, 'bundle'), '--capture-port', '0', '--admin-port', '0', '--listen-address', '127.0.0.1', '--drain-timeout', '2s'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const ports = await new Promise<{ capturePort: number; adminPort: number }>((resolve, reject) => {
      child.stdout.on('data', (c: Buffer) => {
        out += c.toString();
        const line = out.split('\n').find((l) => l.includes('"proxy listening"'));
        if (line) resolve(JSON.parse(line) as { capturePort: number; adminPort: number });
      });
      child.once('exit', (code) => reject(new Error(`exited ${code}: ${stderr}`)));
    });
    let ready = 0;
    for (let i = 0; i < 200 && ready !== 200; i++) {
      ready = await status(ports.adminPort, '/readyz');
      if (ready !== 200) await new Promise((r) => setTimeout(r, 25));
    }
    expect(ready).toBe(200);
    expect(existsSync(join(dir, 'bundle', 'bundle.pem'))).toBe(true);
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(out).toContain('"proxy stopped"');
    expect(stderr).toBe('');
  });

  it('refuses a bad flag with one line and exit code 2, no stack trace', () => {
    const r = spawnSync(process.execPath, [BIN, 'proxy', '--policy', 'p.yaml', '--ca-dir', 'ca', '--drain-timeout', 'soon'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toBe("aigress: --drain-timeout: expected a duration like 25s, 500ms or 5m, got 'soon'\n");
  });

  it('refuses a missing policy file with one line and exit code 1', () => {
    const r = spawnSync(process.execPath, [BIN, 'proxy', '--policy', join(dir, 'nope.yaml'), '--ca-dir', join(dir, 'ca'), '--capture-port', '0', '--admin-port', '0', '--bundle-dir', join(dir, 'b2')], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(`aigress: cannot read policy file ${join(dir, 'nope.yaml')}: ENOENT\n`);
  });
});

describe('a policy field the proxy cannot act on', () => {
  // Every field of the schema is enforced today (shared/policy/enforced.ts lists none), so the refusal is shown
  // with a field the schema does not know: neither kind of field is ever silently ignored.
  it('makes `aigress proxy --policy` exit 1 naming the field, before anything listens', () => {
    const file = join(dir, 'unknown-field.yaml');
    writeFileSync(file, `${policyYaml()}  quotas: [{ tokens: 5 }]\n`);
    const r = spawnSync(process.execPath, [BIN, 'proxy', '--policy', file, '--ca-dir', join(dir, 'ca'), '--capture-port', '0', '--admin-port', '0', '--bundle-dir', join(dir, 'b3')], { encoding: 'utf8', timeout: 20_000 });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/spec\.quotas: unknown field/);
    expect(r.stderr).not.toMatch(/\n\s+at /); // a message, not a stack trace
  });
});

describe('--redis-url', () => {
  it('refuses a URL that is not redis:// or rediss:// with exit code 2, naming the flag', () => {
    const r = spawnSync(process.execPath, [BIN, 'proxy', '--policy', join(dir, 'p.yaml'), '--ca-dir', join(dir, 'ca'), '--redis-url', 'http://x:6379'], { encoding: 'utf8', timeout: 20_000 });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--redis-url: expected redis:\/\/ or rediss:\/\//);
  });
});
