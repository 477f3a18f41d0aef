// Summarises a V8 .cpuprofile (node --cpu-prof): self time per function and per category, as shares of the
// busy (non-idle) time, so the report can say where a missed target's cost goes.

import { readFileSync } from 'node:fs';

/** Which layer a frame belongs to, from its script URL (or, for native frames, its name). */
export function category(frame) {
  const url = frame.url ?? '';
  const fn = frame.functionName ?? '';
  if (fn === '(garbage collector)') return 'GC';
  if (fn === '(program)') return 'V8/native (program)';
  if (fn === '(idle)') return 'idle';
  if (url.includes('node_modules/undici/') || url.startsWith('wasm://')) return 'undici'; // wasm: undici's llhttp
  if (url.includes('node_modules/pino') || url.includes('node_modules/sonic-boom') || url.includes('fast-redact')) return 'pino (logging)';
  if (url.includes('node_modules/prom-client')) return 'prom-client (metrics)';
  if (url.includes('node_modules/')) return 'other npm';
  if (url.includes('/dist/sidecar/pipeline/')) return 'aigress pipeline';
  if (url.includes('/dist/sidecar/proxy/')) return 'aigress proxy (mediate, listener, upstream)';
  if (url.includes('/dist/shared/')) return 'aigress shared (providers, policy, log)';
  if (url.includes('/dist/')) return 'aigress other';
  if (/node:(internal\/)?(_tls|tls)|internal\/tls/.test(url)) return 'node TLS';
  if (/node:(internal\/)?(_http|http)|internal\/http/.test(url)) return 'node:http';
  if (/internal\/streams|node:stream/.test(url)) return 'node streams';
  if (/node:net|internal\/net|stream_base_commons/.test(url)) return 'node net (writev, sockets)';
  if (/node:events|internal\/event_target/.test(url)) return 'node events';
  if (/internal\/(process\/task_queues|timers)|node:timers/.test(url)) return 'node timers/microtasks';
  if (url.startsWith('node:')) return 'node other';
  if (url === '') return `native: ${fn || '(anonymous)'}`;
  return 'other';
}

export function summarise(file, { top = 15, skipUs = 0 } = {}) {
  const prof = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const selfUs = new Map();
  let elapsed = 0;
  for (let i = 0; i < prof.samples.length; i++) {
    elapsed += prof.timeDeltas[i] ?? 0;
    if (elapsed < skipUs) continue;
    const id = prof.samples[i];
    selfUs.set(id, (selfUs.get(id) ?? 0) + (prof.timeDeltas[i] ?? 0));
  }
  let busy = 0;
  let idle = 0;
  const fns = new Map();
  const cats = new Map();
  for (const [id, us] of selfUs) {
    const frame = byId.get(id).callFrame;
    const cat = category(frame);
    if (cat === 'idle') {
      idle += us;
      continue;
    }
    busy += us;
    const where = frame.url ? `${frame.url.replace(/^.*\/(node_modules|dist)\//, '$1/')}:${frame.lineNumber + 1}` : '(native)';
    const key = `${frame.functionName || '(anonymous)'} ${where}`;
    const f = fns.get(key) ?? { function: frame.functionName || '(anonymous)', where, category: cat, us: 0 };
    f.us += us;
    fns.set(key, f);
    // native frames are grouped under one heading in the category table
    const catKey = cat.startsWith('native: ') ? 'native (writev, crypto, …: C++ called from JS)' : cat;
    cats.set(catKey, (cats.get(catKey) ?? 0) + us);
  }
  const pct = (us) => Math.round((1000 * us) / busy) / 10;
  return {
    busyMs: Math.round(busy / 1000),
    idleMs: Math.round(idle / 1000),
    categories: [...cats].sort((a, b) => b[1] - a[1]).map(([name, us]) => ({ category: name, percent: pct(us) })),
    functions: [...fns.values()].sort((a, b) => b.us - a.us).slice(0, top).map((f) => ({ function: f.function, where: f.where, category: f.category, percent: pct(f.us) })),
  };
}
