// Reading Prometheus text exposition the way a dashboard would (pure): samples by name and labels, sums, and the
// sample lines of chosen metrics for display.

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
  line: string;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

function unescape(v: string): string {
  return v.replace(/\\(["\\n])/g, (_m, c: string) => (c === 'n' ? '\n' : c));
}

export function parseSamples(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = SAMPLE.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(LABEL)) labels[l[1]!] = unescape(l[2]!);
    out.push({ name: m[1]!, labels, value: Number(m[3]), line });
  }
  return out;
}

/** The sum of the samples of `name` whose labels include `labels`. */
export function sumSamples(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const s of samples) {
    if (s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)) sum += s.value;
  }
  return sum;
}

/** Per label set of `name`, how much it grew from `before` to `after` (only the series that grew). */
export function growth(before: readonly Sample[], after: readonly Sample[], name: string): { labels: Record<string, string>; by: number }[] {
  const key = (l: Record<string, string>): string => JSON.stringify(Object.entries(l).sort(([a], [b]) => a.localeCompare(b)));
  const old = new Map(before.filter((s) => s.name === name).map((s) => [key(s.labels), s.value]));
  return after
    .filter((s) => s.name === name)
    .map((s) => ({ labels: s.labels, by: s.value - (old.get(key(s.labels)) ?? 0) }))
    .filter((g) => g.by > 0);
}
