import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

// Every file a build-context COPY in the Dockerfile names must survive .dockerignore, or `docker build` fails
// ("not found") in a stage no test here runs: the full image's `COPY charts/aigress/crds` once hit `charts` in
// it. The matching follows Docker's rules for the patterns the file uses: Go filepath.Match globs (`*` and `?`
// stay within one path segment, `**` crosses them) against the path relative to the context, a pattern also
// matching everything under a directory it matches, `!` re-including, the last matching line winning.

const ROOT = join(import.meta.dirname, '../../..');

interface Rule {
  negate: boolean;
  re: RegExp;
  text: string;
}

function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*' && glob[i + 1] === '*') {
      re += '.*';
      i++;
      if (glob[i + 1] === '/') i++; // `**/x` also matches `x` at the top
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

function parseDockerignore(text: string): Rule[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const negate = l.startsWith('!');
      const pattern = (negate ? l.slice(1) : l).trim().replace(/^\/+/, '').replace(/\/+$/, '');
      return { negate, re: globToRegExp(pattern), text: l };
    });
}

/** Whether Docker leaves `path` (relative to the context, `/`-separated) out of the build context. */
function excluded(rules: Rule[], path: string): boolean {
  const parts = path.split('/');
  const prefixes = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
  let out = false;
  for (const r of rules) if (prefixes.some((p) => r.re.test(p))) out = !r.negate;
  return out;
}

/** The build-context sources of the Dockerfile's COPY/ADD instructions (not `--from=` stages). */
function contextSources(dockerfile: string): string[] {
  const joined = dockerfile.replace(/\\\n/g, ' ');
  const sources: string[] = [];
  for (const line of joined.split('\n')) {
    const m = /^\s*(COPY|ADD)\s+(.*)$/i.exec(line);
    if (!m) continue;
    const words = m[2]!.trim().split(/\s+/);
    if (words[0]!.startsWith('[')) throw new Error(`Dockerfile: JSON-form ${m[1]} is not parsed here: ${line}`);
    const flags = words.filter((w) => w.startsWith('--'));
    if (flags.some((f) => f.startsWith('--from'))) continue;
    const args = words.filter((w) => !w.startsWith('--'));
    sources.push(...args.slice(0, -1).map((s) => s.replace(/^\.\//, '').replace(/\/+$/, '')));
  }
  return sources;
}

function filesUnder(rel: string): string[] {
  const abs = join(ROOT, rel);
  if (!statSync(abs).isDirectory()) return [rel];
  return readdirSync(abs).flatMap((f) => filesUnder(`${rel}/${f}`));
}

describe('.dockerignore against the Dockerfile', () => {
  const rules = parseDockerignore(readFileSync(join(ROOT, '.dockerignore'), 'utf8'));
  const sources = contextSources(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));

  it('the matcher follows Docker on the patterns in use', () => {
    const r = parseDockerignore('charts\n*.md\n!charts/aigress/crds\ntest\n**/*.log\n');
    expect(excluded(r, 'charts/aigress/values.yaml')).toBe(true);
    expect(excluded(r, 'charts/aigress/crds/policy.yaml')).toBe(false);
    expect(excluded(r, 'README.md')).toBe(true);
    expect(excluded(r, 'docs/README.md')).toBe(false); // `*` does not cross `/`
    expect(excluded(r, 'testing/x')).toBe(false); // a segment, not a prefix of one
    expect(excluded(r, 'a/b/c.log')).toBe(true);
    expect(excluded(r, 'c.log')).toBe(true);
  });

  it('finds the COPY sources, the full image CRDs included, and skips --from stages', () => {
    expect(sources).toContain('charts/aigress/crds');
    expect(sources).toContain('package.json');
    expect(sources).not.toContain('/src/dist');
  });

  it('keeps every file each COPY source names in the build context', () => {
    const missing: string[] = [];
    for (const s of sources) {
      if (!existsSync(join(ROOT, s))) {
        missing.push(`${s} (not in the repository)`);
        continue;
      }
      for (const f of filesUnder(s)) if (excluded(rules, f)) missing.push(f);
    }
    expect(missing, 'excluded by .dockerignore but copied by the Dockerfile').toEqual([]);
  });
});
