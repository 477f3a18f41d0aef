import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

// The chart's CRDs as shipped beside this aigress (a checkout, the npm package, the image's charts/): what
// `aigress check` compares the installed CRDs with. Found by walking up from this module (src or dist).

export function chartCrds(): Record<string, Record<string, unknown>> | undefined {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const crds = join(dir, 'charts/aigress/crds');
    if (existsSync(crds)) {
      const out: Record<string, Record<string, unknown>> = {};
      for (const f of ['egresspolicies.aigress.io.yaml', 'clusteregresspolicies.aigress.io.yaml']) {
        const p = join(crds, f);
        if (!existsSync(p)) continue;
        const crd = parse(readFileSync(p, 'utf8')) as Record<string, unknown>;
        out[String((crd.metadata as Record<string, unknown>).name)] = crd;
      }
      return out;
    }
    dir = dirname(dir);
  }
  return undefined;
}
