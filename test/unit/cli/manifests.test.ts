import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { BIN, ensureBuilt, runCli } from '../inject/built-cli.js';
import { FIXTURES } from '../inject/support.js';

// `aigress inject` with several -f, directories and -o json; `aigress uninject` (the binary, on the corpus);
// `aigress completion` run in a real bash.

beforeAll(() => ensureBuilt(['dist/cli/uninject.js', 'dist/cli/completion.js']), 180_000);

const fixture = (c: string, f = 'input.yaml'): string => join(FIXTURES, c, f);
const read = (c: string, f = 'input.yaml'): string => readFileSync(fixture(c, f), 'utf8');
const objects = (text: string): unknown[] => parseAllDocuments(text).map((d) => d.toJS() as unknown).filter((v) => v !== null);

describe('aigress inject: several inputs and formats', () => {
  it('takes several -f and prints one stream, in order, notes naming the file', async () => {
    const r = await runCli(['inject', '-f', fixture('01-pod-minimal'), '-f', fixture('07-deployment-opt-out-label')]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${read('01-pod-minimal', 'output.yaml')}---\n${read('07-deployment-opt-out-label')}`);
    expect(r.stderr).toContain(`aigress: ${fixture('07-deployment-opt-out-label')}: document 1 (Deployment `);
  });

  it('reads a directory\'s manifests in name order (-R for subdirectories)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'aigress-inject-dir-'));
    writeFileSync(join(dir, 'b.yaml'), read('02-pod-multi-container'));
    writeFileSync(join(dir, 'a.yml'), read('01-pod-minimal'));
    writeFileSync(join(dir, 'notes.txt'), 'not a manifest');
    mkdirSync(join(dir, 'sub'));
    writeFileSync(join(dir, 'sub', 'c.yaml'), read('22-replicaset'));
    const flat = await runCli(['inject', '-f', dir]);
    expect(flat.code).toBe(0);
    expect(flat.stdout).toBe(`${read('01-pod-minimal', 'output.yaml')}---\n${read('02-pod-multi-container', 'output.yaml')}`);
    const deep = await runCli(['inject', '-f', dir, '-R']);
    expect(deep.stdout).toBe(`${flat.stdout}---\n${read('22-replicaset', 'output.yaml')}`);
  });

  it('-o json prints one object, or a v1 List for several', async () => {
    const one = await runCli(['inject', '-f', fixture('01-pod-minimal'), '-o', 'json']);
    expect(JSON.parse(one.stdout)).toEqual(objects(read('01-pod-minimal', 'output.yaml'))[0]);
    const many = await runCli(['inject', '-f', fixture('26-multi-document'), '-o', 'json']);
    expect(JSON.parse(many.stdout)).toEqual({ apiVersion: 'v1', kind: 'List', items: objects(read('26-multi-document', 'output.yaml')) });
    expect((await runCli(['inject', '-f', fixture('01-pod-minimal'), '-o', 'wide'])).code).toBe(2);
  });

  it('names the file in errors when there are several, and YAML errors carry line and column', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'aigress-inject-bad-'));
    writeFileSync(join(dir, 'bad.yaml'), 'apiVersion: v1\nkind: Pod\nspec: [\n');
    const r = await runCli(['inject', '-f', fixture('01-pod-minimal'), '-f', join(dir, 'bad.yaml')]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(new RegExp(`^aigress: ${join(dir, 'bad.yaml')}: document 1: invalid YAML at line 4, column 1: Flow sequence .*\\n$`));
  });
});

describe('aigress uninject', () => {
  it('takes aigress out of injected manifests (stdin, several kinds) and gives back the original objects', async () => {
    const injected = read('26-multi-document', 'output.yaml');
    const r = await runCli(['uninject', '-f', '-'], injected);
    expect(r.code).toBe(0);
    expect(objects(r.stdout)).toEqual(objects(read('26-multi-document')));
    const json = await runCli(['uninject', '-f', fixture('15-deployment-java-tool-options', 'output.yaml'), '-o', 'json']);
    expect(JSON.parse(json.stdout)).toEqual(objects(read('15-deployment-java-tool-options'))[0]);
  });

  it('prints manifests without aigress unchanged, saying so', async () => {
    const r = await runCli(['uninject', '-f', fixture('01-pod-minimal')]);
    expect(r).toEqual({ code: 0, stdout: read('01-pod-minimal'), stderr: `aigress: ${fixture('01-pod-minimal')}: nothing of aigress found, printed unchanged\n` });
  });

  it('has examples in --help and refuses usage errors with exit 2', async () => {
    expect((await runCli(['uninject', '--help'])).stdout).toMatch(/\nExamples:\n {2}aigress uninject /);
    expect((await runCli(['uninject'])).code).toBe(2);
  });
});

describe('aigress completion', () => {
  /** Completes `line` (the words so far, the last one being completed) in a real bash with the script sourced. */
  const complete = (script: string, words: string[]): string[] => {
    const dir = mkdtempSync(join(tmpdir(), 'aigress-completion-'));
    writeFileSync(join(dir, 'c.bash'), script);
    const array = words.map((w) => `'${w}'`).join(' ');
    const prog = `source ${join(dir, 'c.bash')}; COMP_WORDS=(${array}); COMP_CWORD=${words.length - 1}; _aigress; printf '%s\\n' "\${COMPREPLY[@]}"`;
    const r = spawnSync('bash', ['-c', prog], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    return r.stdout.split('\n').filter(Boolean).sort();
  };

  it('bash: completes commands, nested subcommands and their flags from the real command tree', async () => {
    const r = await runCli(['completion', 'bash']);
    expect(r.code).toBe(0);
    expect(complete(r.stdout, ['aigress', 'po'])).toEqual(['policy']);
    expect(complete(r.stdout, ['aigress', 'policy', ''])).toEqual(['--help', 'explain', 'validate']);
    expect(complete(r.stdout, ['aigress', 'policy', 'validate', '--re'])).toEqual(['--recursive']);
    expect(complete(r.stdout, ['aigress', 'check', '--p'])).toEqual(['--pre']);
    expect(complete(r.stdout, ['aigress', 'inject', '-f', BIN.slice(0, -3)])).toContain(BIN);
  });

  it('zsh and fish scripts are generated; an unknown shell is a usage error', async () => {
    expect((await runCli(['completion', 'zsh'])).stdout).toMatch(/^#compdef aigress\n[\s\S]*bashcompinit[\s\S]*complete -o default -F _aigress aigress\n$/);
    const fish = await runCli(['completion', 'fish']);
    expect(fish.stdout).toContain("complete -c aigress -n '__fish_seen_subcommand_from validate' -l recursive");
    const bad = await runCli(['completion', 'tcsh']);
    expect(bad).toMatchObject({ code: 2, stderr: 'aigress: completion "tcsh": must be bash, zsh or fish\n' });
  });
});
