import { createServer } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { validatePolicy } from '../../shared/policy/validate.js';
import { parsePolicy } from '../../shared/policy/load.js';
import { EventStreamDecoder, encodeEventStreamMessage } from '../../shared/providers/event-stream.js';
import { SseParser, type SseEvent } from '../../shared/providers/sse.js';
import { UserError } from '../../shared/errors.js';
import { peek, parseHttpHead, normalizeHost } from '../../sidecar/proxy/peek.js';
import { admit } from '../../webhook/admission.js';
import { defaultConfig } from '../../webhook/config.js';

// Property-based fuzzing of the parsers that read untrusted bytes. The suite runs a short seeded pass;
// `npm run fuzz` runs 100,000 cases per target (AIGRESS_FUZZ_RUNS) with a random seed it prints, and a
// failure names the seed and the shrunk input, which then becomes a regression case below.

const RUNS = Number(process.env.AIGRESS_FUZZ_RUNS ?? 300);
const SEED = Number(process.env.AIGRESS_FUZZ_SEED ?? 1_796_000_000);
const params = { numRuns: RUNS, seed: SEED, endOnFailure: true } as const;
if (process.env.AIGRESS_FUZZ_RUNS) console.log(`fuzz: ${RUNS} runs per target, seed ${SEED}`);

/** Flips, truncates, inserts or overwrites bytes of a valid input: most fuzz value is near valid inputs. */
const mutated = (base: Buffer): fc.Arbitrary<Buffer> =>
  fc
    .array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom('flip', 'cut', 'insert', 'set')), { maxLength: 8 })
    .map((edits) => {
      let b = Buffer.from(base);
      for (const [pos, byte, op] of edits) {
        const i = b.length === 0 ? 0 : pos % b.length;
        if (op === 'flip') b[i] = b[i]! ^ (1 << (byte % 8));
        else if (op === 'set') b[i] = byte;
        else if (op === 'cut') b = b.subarray(0, i);
        else b = Buffer.concat([b.subarray(0, i), Buffer.from([byte]), b.subarray(i)]);
      }
      return b;
    });

let clientHello: Buffer;
beforeAll(async () => {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const got = new Promise<Buffer>((resolve) => server.once('connection', (s) => s.once('data', (d: Buffer) => (resolve(d), s.destroy()))));
  const c = tlsConnect({ host: '127.0.0.1', port, servername: 'api.openai.com', ALPNProtocols: ['h2', 'http/1.1'] });
  c.on('error', () => undefined);
  clientHello = await got;
  c.destroy();
  server.close();
});

const validPeek = (r: ReturnType<typeof peek>): void => {
  expect(['more', 'tls', 'http', 'unknown']).toContain(r.kind);
  if (r.kind === 'tls' && r.sni !== undefined) expect(normalizeHost(r.sni)).toBe(r.sni); // only normalised names route
  if (r.kind === 'http' && r.request.host !== undefined) expect(normalizeHost(r.request.host)).toBe(r.request.host);
};

describe('fuzz: the ClientHello / SNI parser', () => {
  it('never throws on mutated ClientHellos, and any SNI it returns is a normalised name', () => {
    fc.assert(fc.property(mutated(clientHello), (b) => validPeek(peek(b))), params);
  });
  it('never throws on arbitrary bytes that start like a handshake record', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), (u) => validPeek(peek(Buffer.concat([Buffer.from([0x16, 0x03, 0x01]), Buffer.from(u)])))), params);
  });
});

describe('fuzz: the HTTP head peek', () => {
  const head = Buffer.from('POST /v1/chat/completions HTTP/1.1\r\nHost: api.openai.com:80\r\ncontent-length: 2\r\n\r\n{}');
  it('never throws on mutated heads, and a routed host is normalised', () => {
    fc.assert(
      fc.property(mutated(head), (b) => {
        const r = parseHttpHead(b);
        validPeek(r);
      }),
      params,
    );
  });
  it('Host values of any shape: a host is returned only when it survives normalisation', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 80 }), (host) => {
        if (/[\r\n]/.test(host)) return;
        validPeek(parseHttpHead(Buffer.from(`GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`, 'latin1')));
      }),
      params,
    );
  });
});

describe('fuzz: the SSE decoder', () => {
  const parse = (chunks: Buffer[]): SseEvent[] => {
    const out: SseEvent[] = [];
    const p = new SseParser((e) => out.push(e));
    for (const c of chunks) p.push(c);
    return out;
  };
  it('gives the same events however the bytes are chunked, and never throws', () => {
    const stream = fc.array(fc.oneof(fc.constantFrom('data: x\n', 'data: {"a":1}\r\n', '\n', '\r\n', '\r', ': c\n', 'event: e\n', 'data:é\n', 'id: 1\n'), fc.string({ maxLength: 12 })), { maxLength: 30 }).map((p) => Buffer.from(p.join('')));
    fc.assert(
      fc.property(stream, fc.array(fc.nat(), { maxLength: 10 }), (bytes, cuts) => {
        const points = [...new Set(cuts.map((c) => (bytes.length === 0 ? 0 : c % bytes.length)))].sort((a, b) => a - b);
        const chunks: Buffer[] = [];
        let at = 0;
        for (const p of points) {
          chunks.push(bytes.subarray(at, p));
          at = p;
        }
        chunks.push(bytes.subarray(at));
        expect(parse(chunks)).toEqual(parse([bytes]));
      }),
      params,
    );
  });
});

describe('fuzz: the AWS event-stream decoder', () => {
  const msg = (body: string): Buffer => encodeEventStreamMessage({ headers: { ':event-type': 'chunk', ':message-type': 'event' }, body: Buffer.from(body) });
  it('decodes what the encoder wrote, chunked any way', () => {
    fc.assert(
      fc.property(fc.array(fc.string({ maxLength: 50 }), { minLength: 1, maxLength: 5 }), fc.integer({ min: 1, max: 64 }), (bodies, size) => {
        const all = Buffer.concat(bodies.map(msg));
        const got: string[] = [];
        const d = new EventStreamDecoder((m) => got.push(Buffer.from(m.body).toString()));
        for (let i = 0; i < all.length; i += size) d.push(all.subarray(i, i + size));
        expect(got).toEqual(bodies);
        expect(d.failed).toBe(false);
      }),
      params,
    );
  });
  it('never throws on corrupted streams, and a corrupted message is never delivered as valid', () => {
    const base = Buffer.concat([msg('{"bytes":"eyJ0eXBlIjoieCJ9"}'), msg('second')]);
    fc.assert(
      fc.property(mutated(base), (b) => {
        const got: Buffer[] = [];
        const d = new EventStreamDecoder((_m, raw) => got.push(Buffer.from(raw)));
        d.push(b);
        // Every delivered message passed both CRCs, so it is one of the two originals.
        for (const raw of got) expect(base.includes(raw)).toBe(true);
      }),
      params,
    );
  });
});

describe('fuzz: the AdmissionReview handler', () => {
  const config = defaultConfig().injection;
  const json: fc.Arbitrary<unknown> = fc.jsonValue({ maxDepth: 6 });
  const reviewLike = fc.record({
    apiVersion: fc.oneof(fc.constant('admission.k8s.io/v1'), json),
    kind: fc.oneof(fc.constant('AdmissionReview'), json),
    request: fc.oneof(
      json,
      fc.record({
        uid: fc.oneof(fc.constant('u-1'), json),
        kind: fc.oneof(fc.constant({ group: '', version: 'v1', kind: 'Pod' }), json),
        operation: fc.constantFrom('CREATE', 'UPDATE', 'DELETE', 'x'),
        namespace: fc.oneof(fc.constant('team-a'), json),
        object: fc.oneof(json, fc.record({ apiVersion: fc.constant('v1'), kind: fc.constant('Pod'), metadata: json, spec: fc.oneof(json, fc.record({ containers: json })) })),
      }),
    ),
  });
  it('answers 200 or 400 with a JSON body for any document, never throws, never 500', () => {
    fc.assert(
      fc.property(fc.oneof(reviewLike, json), (doc) => {
        const out = admit(JSON.stringify(doc) ?? 'null', config);
        expect([200, 400]).toContain(out.status);
        expect(() => JSON.stringify(out.body)).not.toThrow();
      }),
      params,
    );
  });
  it('answers 400 for arbitrary bytes that are not JSON', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (u) => {
        const out = admit(Buffer.from(u), config);
        expect([200, 400]).toContain(out.status);
      }),
      params,
    );
  });
});

describe('fuzz: the EgressPolicy loader', () => {
  const field = fc.constantFrom('mode', 'providers', 'regions', 'models', 'budgets', 'filters', 'credentials', 'unmatchedEgress', 'nonsense');
  const spec = fc.dictionary(field, fc.jsonValue({ maxDepth: 3 }), { maxKeys: 5 });
  const doc = fc.record({
    apiVersion: fc.oneof(fc.constant('aigress.io/v1alpha1'), fc.jsonValue()),
    kind: fc.oneof(fc.constant('EgressPolicy'), fc.jsonValue()),
    metadata: fc.oneof(fc.constant({ name: 'p' }), fc.jsonValue({ maxDepth: 2 })),
    spec: fc.oneof(spec, fc.jsonValue({ maxDepth: 2 })),
  });
  it('every invalid document gets issues that each name a field (a path) and say what is wrong', () => {
    fc.assert(
      fc.property(fc.oneof(doc, fc.jsonValue({ maxDepth: 3 })), (d) => {
        const r = validatePolicy(d);
        if (r.ok) return;
        expect(r.issues.length).toBeGreaterThan(0);
        const isObject = typeof d === 'object' && d !== null && !Array.isArray(d);
        for (const issue of r.issues) {
          // A field path such as spec.budgets[0].per; only a document that is not an object at all has none.
          if (isObject) expect(issue.path).toMatch(/^[A-Za-z]/);
          else expect(issue).toEqual({ path: '', message: 'policy must be a YAML/JSON object' });
          expect(issue.message.length).toBeGreaterThan(0);
        }
      }),
      params,
    );
  });
  it('a policy file of any text is either a policy or a UserError naming the problem (never another throw)', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 200 }), doc.map((d) => JSON.stringify(d))), (text) => {
        try {
          parsePolicy(text, 'policy.yaml');
        } catch (err) {
          expect(err).toBeInstanceOf(UserError);
          expect((err as Error).message).toContain('policy.yaml');
        }
      }),
      params,
    );
  });

  // Regressions found by `npm run fuzz` (seed 1796400000): yaml's toJS threw a ReferenceError past the loader.
  it.each([
    ['an unresolved alias', '*s'],
    ['an alias in a field', 'apiVersion: aigress.io/v1alpha1\nkind: EgressPolicy\nspec: { providers: *p }'],
    ['a billion-laughs document', ['a: &a [x,x,x,x,x,x,x,x,x,x]', ...'bcdefgh'.split('').map((k, i) => `${k}: &${k} [${Array(10).fill('*' + 'abcdefg'[i]).join(',')}]`)].join('\n')],
  ])('%s is a UserError naming the file', (_what, text) => {
    expect(() => parsePolicy(text, 'policy.yaml')).toThrow(UserError);
    expect(() => parsePolicy(text, 'policy.yaml')).toThrow(/^policy\.yaml: invalid YAML/);
  });
});
