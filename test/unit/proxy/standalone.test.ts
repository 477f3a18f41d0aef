import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { createCA, issueLeaf, loadCA } from '../../../shared/pki.js';
import type { EgressPolicy } from '../../../shared/policy/types.js';
import { FilePolicySource, LocalCaCertificateSource } from '../../../sidecar/proxy/sources/standalone.js';
import { policyYaml } from './support.js';

let base: string;
let ca: { certPem: string; keyPem: string };
let other: { certPem: string; keyPem: string };

function caDir(name: string, files: Record<string, string>): string {
  const dir = join(base, name);
  mkdirSync(dir);
  for (const [f, text] of Object.entries(files)) writeFileSync(join(dir, f), text);
  return dir;
}

beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), 'aigress-standalone-'));
  ca = await createCA('standalone test CA', 2);
  other = await createCA('another CA', 2);
});

describe('LocalCaCertificateSource: checking --ca-dir', () => {
  it('reads tls.crt / tls.key (the control plane\'s and cert-manager\'s names), ahead of ca.crt / ca.key', async () => {
    const tls = new LocalCaCertificateSource(caDir('tls-names', { 'tls.crt': ca.certPem, 'tls.key': ca.keyPem }));
    await tls.ready();
    expect(tls.caPem()).toBe(ca.certPem);
    const both = new LocalCaCertificateSource(caDir('both-names', { 'tls.crt': ca.certPem, 'tls.key': ca.keyPem, 'ca.crt': other.certPem, 'ca.key': other.keyPem }));
    await both.ready();
    expect(both.caPem()).toBe(ca.certPem);
  });
  it('with neither, names the tls.crt it looked for', async () => {
    const dir = caDir('empty', {});
    await expect(new LocalCaCertificateSource(dir).ready()).rejects.toThrow(`--ca-dir: cannot read ${join(dir, 'tls.crt')}: ENOENT`);
  });
  it('names the missing file', async () => {
    const dir = caDir('no-key', { 'ca.crt': ca.certPem });
    await expect(new LocalCaCertificateSource(dir).ready()).rejects.toThrow(`--ca-dir: cannot read ${join(dir, 'ca.key')}: ENOENT`);
  });
  it('refuses a ca.crt that is not a certificate', async () => {
    const dir = caDir('garbage', { 'ca.crt': 'hello', 'ca.key': ca.keyPem });
    await expect(new LocalCaCertificateSource(dir).ready()).rejects.toThrow(/ca\.crt is not a PEM certificate/);
  });
  it('refuses a leaf certificate as CA', async () => {
    const leaf = await issueLeaf(await loadCA(ca.certPem, ca.keyPem), { dnsNames: ['x.test'] });
    const dir = caDir('leaf', { 'ca.crt': leaf.certPem, 'ca.key': leaf.keyPem });
    await expect(new LocalCaCertificateSource(dir).ready()).rejects.toThrow(/ca\.crt is not a CA certificate/);
  });
  it('refuses a key that belongs to another certificate', async () => {
    const dir = caDir('mismatch', { 'ca.crt': ca.certPem, 'ca.key': other.keyPem });
    await expect(new LocalCaCertificateSource(dir).ready()).rejects.toThrow(/ca\.key does not belong to ca\.crt/);
  });
});

describe('LocalCaCertificateSource: leaves', () => {
  it('mints once per host, then answers from memory (the same context, synchronously)', async () => {
    const src = new LocalCaCertificateSource(caDir('ok', { 'ca.crt': ca.certPem, 'ca.key': ca.keyPem }));
    await src.ready();
    expect(src.caPem()).toBe(ca.certPem);
    const a = src.contextFor('api.openai.com');
    const b = src.contextFor('api.openai.com');
    expect(a).toBeInstanceOf(Promise);
    expect(b).toBe(a); // concurrent first calls share one mint
    const ctx = await a;
    const again = src.contextFor('api.openai.com');
    expect(again).not.toBeInstanceOf(Promise);
    expect(again).toBe(ctx);
    expect(await src.contextFor('api.anthropic.com')).not.toBe(ctx);
  });

  it('renews a leaf near its end in the background, serving the old one meanwhile', async () => {
    let now = Date.now();
    const src = new LocalCaCertificateSource(caDir('renew', { 'ca.crt': ca.certPem, 'ca.key': ca.keyPem }), () => now);
    await src.ready();
    const first = await src.contextFor('api.openai.com');
    now += 23.5 * 3_600_000; // past the renewal point (an hour before the 24 h lifetime ends)
    expect(src.contextFor('api.openai.com')).toBe(first);
    let next = src.contextFor('api.openai.com');
    for (let i = 0; i < 100 && next === first; i++) {
      await new Promise((r) => setTimeout(r, 20));
      next = src.contextFor('api.openai.com');
    }
    expect(next).not.toBe(first);
    expect(next).not.toBeInstanceOf(Promise);
  });
});

describe('FilePolicySource', () => {
  it('loads the file, tells listeners about a changed policy, and keeps the last good one on a bad edit', async () => {
    const file = join(base, 'policy.yaml');
    writeFileSync(file, policyYaml());
    const src = new FilePolicySource(file, undefined, 60_000);
    const first = await src.ready();
    expect(first.spec.unmatchedEgress).toBe('passthrough');
    const seen: EgressPolicy[] = [];
    src.onChange((p) => seen.push(p));
    await src.reload(); // unchanged: nobody is told
    expect(seen).toHaveLength(0);
    writeFileSync(file, policyYaml({ unmatchedEgress: 'deny' }));
    await src.reload();
    expect(seen.map((p) => p.spec.unmatchedEgress)).toEqual(['deny']);
    writeFileSync(file, policyYaml().replace('unmatchedEgress: passthrough', 'unmatchedEgress: sometimes'));
    await src.reload();
    expect(seen).toHaveLength(1);
    expect(src.current().spec.unmatchedEgress).toBe('deny');
    src.close();
  });

  it('fails ready() with the file and field named', async () => {
    const file = join(base, 'bad.yaml');
    writeFileSync(file, policyYaml().replace('unmatchedEgress: passthrough', 'unmatchedEgress: sometimes'));
    await expect(new FilePolicySource(file).ready()).rejects.toThrow(/bad\.yaml: invalid EgressPolicy: .*spec\.unmatchedEgress/);
  });
});
