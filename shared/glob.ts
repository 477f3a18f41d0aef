// Shell-style globs as policies write them: `*` any run of characters, `?` exactly one; nothing else is special.
// Matching ignores case: model names differ in case between SDKs and docs, and a deny rule must not be dodged
// by writing `GPT-4o` instead of `gpt-4o`.

export type StringMatcher = (s: string) => boolean;

export function globToRegExp(glob: string): RegExp {
  let src = '';
  for (const ch of glob) {
    if (ch === '*') src += '.*';
    else if (ch === '?') src += '.';
    else src += ch.replace(/[.+^${}()|[\]\\/-]/g, '\\$&');
  }
  return new RegExp(`^${src}$`, 'is');
}

/** One matcher for a list of globs: true when any matches. An empty list matches nothing. */
export function compileGlobs(globs: readonly string[]): StringMatcher {
  if (globs.length === 0) return () => false;
  const re = new RegExp(globs.map((g) => globToRegExp(g).source).join('|'), 'is');
  return (s) => re.test(s);
}
