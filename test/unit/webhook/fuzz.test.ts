import { Agent } from 'node:https';
import fastJsonPatch from 'fast-json-patch';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultConfig } from '../../../webhook/config.js';
import { admit } from '../../../webhook/admission.js';
import { mulberry32 } from '../../support/prng.js';
import { docs, loadCases, podsOf } from '../inject/support.js';
import { call, review, startWebhook, type Running } from './support.js';

// Malformed and random AdmissionReviews: whatever arrives, the answer is a well-formed HTTP response (200 with an
// AdmissionReview for the same uid, or 400 with a JSON message), any patch returned applies cleanly to the object
// sent, and the server keeps answering. Seeded, so a failure names the seed and case that reproduce it.

const SEED = Number(process.env.FUZZ_SEED ?? 20240611);
const HTTPS_CASES = 1500;
const DIRECT_CASES = 6000;

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

class Fuzzer {
  private readonly rnd: () => number;
  constructor(seed: number) {
    this.rnd = mulberry32(seed);
  }
  int(n: number): number {
    return Math.floor(this.rnd() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
  value(depth = 0): Json {
    const kinds = depth > 3 ? 5 : 7;
    switch (this.int(kinds)) {
      case 0:
        return null;
      case 1:
        return this.rnd() < 0.5;
      case 2:
        return this.pick([0, -1, 1500, 2 ** 53, 1e308, 3.14, -0]);
      case 3:
        return this.pick(['', 'Always', 'false', '1500', '80,abc', '10.0.0.0/8', 'ü€😀', '~1/', 'x'.repeat(this.int(300)), '$(VAR)']);
      case 4:
        return this.pick<Json>([[], {}, [null], { name: 'x' }]);
      case 5:
        return Array.from({ length: this.int(4) }, () => this.value(depth + 1));
      default:
        return Object.fromEntries(Array.from({ length: this.int(4) }, () => [this.pick(['name', 'env', 'spec', 'value', 'metadata', 'aigress.io/status', 'x']), this.value(depth + 1)]));
    }
  }
  /** Every path to a node in the document (root excluded). */
  paths(doc: Json, prefix: Array<string | number> = [], out: Array<Array<string | number>> = []): Array<Array<string | number>> {
    const entries: Array<[string | number, Json]> = Array.isArray(doc) ? doc.map((v, i) => [i, v]) : doc && typeof doc === 'object' ? Object.entries(doc) : [];
    for (const [k, v] of entries) {
      out.push([...prefix, k]);
      this.paths(v, [...prefix, k], out);
    }
    return out;
  }
  mutate(doc: Json): Json {
    const copy = structuredClone(doc);
    for (let n = 1 + this.int(4); n > 0; n--) {
      const all = this.paths(copy);
      if (all.length === 0) break;
      const path = this.pick(all);
      let parent: Json = copy;
      for (const s of path.slice(0, -1)) parent = (parent as Record<string | number, Json>)[s]!;
      const last = path[path.length - 1]!;
      const action = this.int(4);
      if (Array.isArray(parent)) {
        if (action === 0) parent.splice(last as number, 1);
        else if (action === 1) parent.push(structuredClone(parent[last as number]!));
        else parent[last as number] = this.value();
      } else {
        const obj = parent as Record<string, Json>;
        if (action === 0) delete obj[last as string];
        else if (action === 1) obj[`${String(last)}~/x`] = this.value();
        else obj[last as string] = this.value();
      }
    }
    return copy;
  }
  body(bases: Json[]): string | Buffer {
    const mode = this.int(10);
    if (mode === 0) return Buffer.from(Array.from({ length: this.int(2000) }, () => this.int(256)));
    if (mode === 1) return JSON.stringify(this.value());
    const text = JSON.stringify(this.mutate(this.pick(bases)));
    if (mode === 2) return text.slice(0, this.int(text.length));
    if (mode === 3) {
      const i = this.int(text.length);
      return text.slice(0, i) + String.fromCharCode(this.int(128)) + text.slice(i + 1);
    }
    if (mode === 4) return '['.repeat(20000 + this.int(20000));
    return text;
  }
}

const { applyPatch, deepClone } = fastJsonPatch;
const config = defaultConfig().injection;
const bases: Json[] = loadCases().flatMap((c) => podsOf(docs(c.input)).map((p) => review(p.pod, { uid: `uid-${c.name}` }) as unknown as Json));

/** Checks one answer; returns a description of what is wrong, or undefined. */
function problem(sent: string | Buffer, status: number, body: unknown): string | undefined {
  if (status === 400) return typeof (body as { message?: unknown }).message === 'string' ? undefined : '400 without a message';
  if (status !== 200) return `status ${status}`;
  const response = (body as { response?: { uid?: unknown; allowed?: unknown; patch?: string } }).response;
  if (!response || typeof response.allowed !== 'boolean') return 'no response.allowed';
  const request = (JSON.parse(sent.toString()) as { request: { uid: unknown; object: unknown } }).request;
  if (response.uid !== request.uid) return `uid ${String(response.uid)} for ${String(request.uid)}`;
  if (response.patch !== undefined) {
    const ops = JSON.parse(Buffer.from(response.patch, 'base64').toString('utf8')) as never;
    try {
      applyPatch(deepClone(request.object), ops, true, false);
    } catch (err) {
      return `patch does not apply: ${(err as Error).message.split('\n')[0]}`;
    }
  }
  return undefined;
}

describe(`fuzzing the AdmissionReview endpoint (seed ${SEED})`, () => {
  it(`admit() answers ${DIRECT_CASES} malformed and random inputs`, () => {
    const f = new Fuzzer(SEED);
    const results = new Map<string, number>();
    for (let i = 0; i < DIRECT_CASES; i++) {
      const sent = f.body(bases);
      const out = admit(sent, config);
      results.set(out.result, (results.get(out.result) ?? 0) + 1);
      const why = problem(sent, out.status, out.body);
      if (why) throw new Error(`seed ${SEED} case ${i}: ${why}; input ${sent.toString().slice(0, 300)}`);
    }
    // Mutated-but-plausible pods reached every branch of the decision, not only the parser's rejections.
    for (const r of ['injected', 'skipped', 'denied', 'allowed', 'bad-request']) expect(results.get(r), r).toBeGreaterThan(20);
  });

  describe('over HTTPS', () => {
    let s: Running;
    let agent: Agent;
    beforeAll(async () => {
      s = await startWebhook();
      agent = new Agent({ keepAlive: true, maxSockets: 8 });
    });
    afterAll(async () => {
      agent.destroy();
      await s.close();
    });

    it(`answers ${HTTPS_CASES} requests with a valid HTTP response each, then still serves /healthz`, async () => {
      const f = new Fuzzer(SEED + 1);
      const statuses = new Map<number, number>();
      for (let i = 0; i < HTTPS_CASES; i += 8) {
        const batch = Array.from({ length: Math.min(8, HTTPS_CASES - i) }, () => f.body(bases));
        const answers = await Promise.all(batch.map((b) => call({ ...s, agent }, 'POST', '/mutate', b)));
        answers.forEach((a, j) => {
          statuses.set(a.status, (statuses.get(a.status) ?? 0) + 1);
          expect(a.headers['content-type']).toBe('application/json');
          const why = problem(batch[j]!, a.status, a.json());
          if (why) throw new Error(`seed ${SEED + 1} case ${i + j}: ${why}`);
        });
      }
      // Both kinds of answer occurred: the corpus exercised the decision, not just the parser.
      expect(statuses.get(200)).toBeGreaterThan(100);
      expect(statuses.get(400)).toBeGreaterThan(100);
      expect((await call(s, 'GET', '/healthz')).status).toBe(200);
    });
  });
});
