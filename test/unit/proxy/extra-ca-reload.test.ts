import { mkdirSync, readFileSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCA } from '../../../shared/pki.js';
import { captureLogger, createTestPki, startTestProxy, type TestPki, type TestProxy } from './support.js';

// --extra-ca-file is re-read while the proxy runs (proxy.ts polls it): a rewritten file, or a ConfigMap volume's
// symlink swap, reaches bundle.pem; a broken edit is logged and the last good bundle stays.

const POLL_LIMIT_MS = 30_000; // an upper bound for a 2 s poll on a loaded machine, never an expectation

async function until<T>(what: string, probe: () => T | undefined): Promise<T> {
  const deadline = Date.now() + POLL_LIMIT_MS;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const oneLine = (pem: string): string => pem.trim();

describe('extra CA roots reload (--extra-ca-file)', () => {
  let pki: TestPki;
  let proxy: TestProxy;
  let log: ReturnType<typeof captureLogger>;
  let volume: string;
  let file: string;
  const bundle = (): string => readFileSync(join(proxy.bundleDir, 'bundle.pem'), 'utf8');
  const count = (msg: string): number => log.lines.filter((l) => l.msg === msg).length;

  beforeAll(async () => {
    pki = await createTestPki();
    // Laid out like a ConfigMap volume: the key is a symlink through ..data to a timestamped directory.
    volume = join(pki.dir, 'extra-ca');
    mkdirSync(join(volume, '..v1'), { recursive: true });
    writeFileSync(join(volume, '..v1', 'ca.crt'), (await createCA('corp root A', 1)).certPem);
    symlinkSync('..v1', join(volume, '..data'));
    symlinkSync('..data/ca.crt', join(volume, 'ca.crt'));
    file = join(volume, 'ca.crt');
    log = captureLogger();
    proxy = await startTestProxy(pki, { extraCaFile: file, logger: log.logger });
    await proxy.handle.ready;
  });
  afterAll(async () => {
    await proxy?.handle.close();
  });

  it('starts with the file\'s root in bundle.pem, after the aigress CA', () => {
    const pem = bundle();
    expect(pem).toContain(oneLine(readFileSync(file, 'utf8')));
    expect(pem).toContain(oneLine(pki.caPem));
  });

  it('a rewritten file replaces the root in bundle.pem', async () => {
    const before = readFileSync(file, 'utf8');
    const b = (await createCA('corp root B', 1)).certPem;
    const reloads = count('extra CA roots reloaded into the bundle');
    writeFileSync(join(volume, '..v1', 'ca.crt'), b);
    await until('the reload', () => (count('extra CA roots reloaded into the bundle') > reloads ? true : undefined));
    expect(bundle()).toContain(oneLine(b));
    expect(bundle()).not.toContain(oneLine(before));
    expect(bundle()).toContain(oneLine(pki.caPem));
  }, 2 * POLL_LIMIT_MS);

  it('a broken edit is logged, naming the file, and the last good bundle stays', async () => {
    const good = bundle();
    const failures = count('extra CA roots not reloaded; the bundle keeps the previous ones');
    writeFileSync(join(volume, '..v1', 'ca.crt'), 'not a certificate\n');
    const line = await until('the refusal', () => log.lines.filter((l) => l.msg === 'extra CA roots not reloaded; the bundle keeps the previous ones')[failures]);
    expect(line.file).toBe(file);
    expect(String(line.err)).toContain('no PEM certificate');
    expect(bundle()).toBe(good);
  }, 2 * POLL_LIMIT_MS);

  it('a ConfigMap update (the ..data symlink swapped to a new directory) reaches bundle.pem', async () => {
    const c = (await createCA('corp root C', 1)).certPem;
    mkdirSync(join(volume, '..v2'));
    writeFileSync(join(volume, '..v2', 'ca.crt'), c);
    const reloads = count('extra CA roots reloaded into the bundle');
    symlinkSync('..v2', join(volume, '..data_tmp'));
    renameSync(join(volume, '..data_tmp'), join(volume, '..data')); // atomic, as the kubelet does it
    await until('the reload', () => (count('extra CA roots reloaded into the bundle') > reloads ? true : undefined));
    expect(bundle()).toContain(oneLine(c));
    expect(bundle()).toContain(oneLine(pki.caPem));
  }, 2 * POLL_LIMIT_MS);
});
