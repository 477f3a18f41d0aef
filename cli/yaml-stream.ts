import { CST, Composer, Parser, type Document } from 'yaml';

/**
 * Splits a YAML stream into documents, each with its exact source text (comments and layout included; the `---`
 * marker dropped), so a command that changes some documents prints the others byte for byte as they came. The
 * same split `aigress inject` makes.
 */
export function splitDocuments(text: string): Array<{ source: string; doc: Document.Parsed }> {
  const tokens = [...new Parser().parse(text)];
  const docs = [...new Composer().compose(tokens)];
  const sources: string[] = [];
  let pending = ''; // comments between documents belong to the next one
  for (const t of tokens) {
    if (t.type === 'document') {
      sources.push(pending + CST.stringify(t).replace(/^---[ \t]*(\n)?/, ''));
      pending = '';
    } else if (t.type === 'comment' || t.type === 'newline' || t.type === 'space') {
      pending += CST.stringify(t);
    }
  }
  return docs.map((doc, i) => ({ doc, source: sources[i] ?? '' }));
}
