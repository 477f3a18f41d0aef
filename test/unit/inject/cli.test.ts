import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, runCli } from './built-cli.js';
import { FIXTURES } from './support.js';

const fixture = (c: string, f: string): string => join(FIXTURES, c, f);
const read = (c: string, f: string): string => readFileSync(fixture(c, f), 'utf8');
const stderrOf = (c: string): string =>
  read(c, 'notes.txt')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => `aigress: ${l}\n`)
    .join('');

beforeAll(() => ensureBuilt(), 180_000);

describe('aigress inject (the binary)', () => {
  it('prints the injected manifests of a file, with warnings on stderr, and what the namespace needs', async () => {
    const r = await runCli(['inject', '-f', fixture('04-deployment-env-from-configmap-secret', 'input.yaml')]);
    const note =
      'aigress: note: the control plane issues certificates and policy only to pods in namespaces labelled aigress.io/inject=enabled; ' +
      'elsewhere the injected proxies never become ready (their log and aigress_proxy_certificate_renewal_failures_total{reason="NamespaceNotEnabled"} say so)\n';
    expect(r).toEqual({ code: 0, stdout: read('04-deployment-env-from-configmap-secret', 'output.yaml'), stderr: stderrOf('04-deployment-env-from-configmap-secret') + note });
  });

  it('reads multi-document YAML from stdin with -f -', async () => {
    const r = await runCli(['inject', '-f', '-'], read('26-multi-document', 'input.yaml'));
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(read('26-multi-document', 'output.yaml'));
  });

  it('prints a skipped workload unchanged, with the reason on stderr, exit 0', async () => {
    const r = await runCli(['inject', '-f', fixture('07-deployment-opt-out-label', 'input.yaml')]);
    expect(r).toEqual({ code: 0, stdout: read('07-deployment-opt-out-label', 'input.yaml'), stderr: stderrOf('07-deployment-opt-out-label') });
  });

  it('takes the webhook\'s config file with --config', async () => {
    const r = await runCli(['inject', '--config', fixture('32-pod-custom-config', 'config.yaml'), '-f', fixture('32-pod-custom-config', 'input.yaml')]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(read('32-pod-custom-config', 'output.yaml'));
  });

  it('refuses what the webhook would deny, with the same message and a non-zero exit', async () => {
    const r = await runCli(['inject', '-f', fixture('30-deployment-bad-cidr-annotation', 'input.yaml')]);
    expect(r).toEqual({ code: 1, stdout: '', stderr: `aigress: ${read('30-deployment-bad-cidr-annotation', 'error.txt')}\n` });
  });

  it('refuses a pod with a container that could bypass capture, naming it and its field, exit 1; with escapingContainers: warn, injects it and warns', async () => {
    const denied = await runCli(['inject', '-f', fixture('36-deployment-net-admin', 'input.yaml')]);
    expect(denied).toEqual({ code: 1, stdout: '', stderr: `aigress: ${read('36-deployment-net-admin', 'error.txt')}\n` });
    expect(denied.stderr).toContain('container "wireguard" adds NET_ADMIN (securityContext.capabilities.add)');
    const c = '37-pod-escaping-containers-warn';
    const warned = await runCli(['inject', '--config', fixture(c, 'config.yaml'), '-f', fixture(c, 'input.yaml')]);
    expect(warned.code).toBe(0);
    expect(warned.stdout).toBe(read(c, 'output.yaml'));
    expect(warned.stderr.startsWith(stderrOf(c))).toBe(true);
    expect(stderrOf(c)).toMatch(/warning: container "pinger" adds NET_RAW \(securityContext.capabilities.add\)/);
  });

  it.each([
    ['invalid YAML', ['-f', '-'], 'apiVersion: v1\nkind: Pod\nspec: [\n', 1, /^aigress: <stdin>: document 1: invalid YAML at line 4, column 1: .+\n$/],
    ['an invalid object', ['-f', '-'], 'apiVersion: v1\nkind: Pod\nspec: {containers: []}\n', 1, /^aigress: document 1 \(Pod \(unnamed\)\): spec.containers: must list at least one container\n$/],
    ['a missing file', ['-f', '/nonexistent.yaml'], '', 1, /^aigress: cannot read \/nonexistent.yaml: ENOENT\n$/],
    ['a bad --config', ['-f', '-', '--config', '/nonexistent/config.yaml'], '', 1, /^aigress: cannot read config file \/nonexistent\/config.yaml: ENOENT\n$/],
    ['a bad --namespace', ['-f', '-', '--namespace', 'Team_A'], '', 2, /^aigress: --namespace "Team_A": not a valid namespace name\n$/],
  ])('exits non-zero with one line for %s', async (_what, args, stdin, code, stderr) => {
    const r = await runCli(['inject', ...args], stdin);
    expect(r.code).toBe(code);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(stderr);
  });

  it('requires -f (usage error, exit 2)', async () => {
    const r = await runCli(['inject']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/required option '-f, --filename <file>' not specified/);
  });

  it('names the config field when the config is invalid', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'aigress-inject-cli-'));
    writeFileSync(join(dir, 'c.yaml'), 'injection:\n  nativeSidecar: maybe\n');
    const r = await runCli(['inject', '-f', '-', '--config', join(dir, 'c.yaml')], '');
    expect(r).toEqual({ code: 1, stdout: '', stderr: `aigress: ${join(dir, 'c.yaml')}: injection.nativeSidecar: must be one of auto, always, never (got "maybe")\n` });
  });
});
