import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { request } from 'node:https';
import { connect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ANNOTATION_EXCLUDE_PORTS } from '../../../shared/constants.js';
import { MAX_BODY_BYTES } from '../../../webhook/server.js';
import { call, decodePatch, review, startWebhook, testPki, type AdmissionResponseBody, type Running } from './support.js';

const pod = (annotations: Record<string, string> = {}): Record<string, unknown> => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { generateName: 'chat-7d9f-', namespace: 'team-a', annotations },
  spec: {
    containers: [{ name: 'app', image: 'chat:1', env: [{ name: 'OPENAI_API_KEY', value: 'sk-live-SECRET-do-not-log' }] }],
  },
});

let s: Running;
beforeAll(async () => {
  s = await startWebhook();
});
afterAll(async () => {
  await s.close();
});

const mutate = async (body: unknown): Promise<{ status: number; body: AdmissionResponseBody & { message?: string } }> => {
  const res = await call(s, 'POST', '/mutate', typeof body === 'string' ? body : JSON.stringify(body));
  expect(res.headers['content-type']).toBe('application/json');
  return { status: res.status, body: res.json() as AdmissionResponseBody & { message?: string } };
};

describe('POST /mutate', () => {
  it('injects a pod: same uid, JSONPatch, base64 patch', async () => {
    const { status, body } = await mutate(review(pod()));
    expect(status).toBe(200);
    expect(body.response).toMatchObject({ uid: '705ab4f5-6393-11e8-b7cc-42010a800002', allowed: true, patchType: 'JSONPatch' });
    const ops = decodePatch(body);
    expect(ops[0]).toMatchObject({ op: 'add', path: '/metadata/annotations/aigress.io~1status' });
    expect(ops.some((o) => o.path === '/spec/initContainers')).toBe(true);
  });

  it.each([
    ['malformed JSON', '{"apiVersion": "admission.k8s.io/v1",', /^malformed JSON/],
    ['a JSON array', '[]', /AdmissionReview object/],
    ['the wrong apiVersion', { ...review(pod()), apiVersion: 'admission.k8s.io/v1beta1' }, /apiVersion must be admission.k8s.io\/v1 \(got "admission.k8s.io\/v1beta1"\)/],
    ['the wrong kind', { ...review(pod()), kind: 'Pod' }, /kind must be AdmissionReview \(got "Pod"\)/],
    ['no request', { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }, /^request: required/],
    ['no uid', review(pod(), { uid: undefined }), /^request.uid: required/],
    ['an empty uid', review(pod(), { uid: '' }), /^request.uid: required \(got ""\)/],
    ['a Pod CREATE without object', review(undefined), /^request.object: required/],
  ])('answers 400 with a JSON message for %s', async (_what, body, message) => {
    const { status, body: answer } = await mutate(body);
    expect(status).toBe(400);
    expect(answer.message).toMatch(message);
  });

  it('allows objects that are not Pods, other operations and pod subresources unchanged', async () => {
    const deployment = review({ kind: 'Deployment' }, { kind: { group: 'apps', version: 'v1', kind: 'Deployment' } });
    const update = review(pod(), { operation: 'UPDATE' });
    const ephemeral = review(pod(), { subResource: 'ephemeralcontainers' });
    for (const r of [deployment, update, ephemeral]) {
      const { status, body } = await mutate(r);
      expect(status).toBe(200);
      expect(body.response).toEqual({ uid: '705ab4f5-6393-11e8-b7cc-42010a800002', allowed: true });
    }
  });

  it('denies a malformed annotation with a message naming the annotation and the value', async () => {
    const { status, body } = await mutate(review(pod({ [ANNOTATION_EXCLUDE_PORTS]: '5432,http' })));
    expect(status).toBe(200);
    expect(body.response.allowed).toBe(false);
    expect(body.response.status).toEqual({
      code: 400,
      message: 'annotation aigress.io/exclude-outbound-ports: "5432,http": "http" is not a port (1-65535) or a port range like 8000-8100',
    });
    expect(body.response.patch).toBeUndefined();
  });

  it('answers 413 for a body over 3 MiB, and keeps serving', async () => {
    const big = Buffer.alloc(MAX_BODY_BYTES + 1024, 0x20);
    const res = await call(s, 'POST', '/mutate', big);
    expect(res.status).toBe(413);
    expect((res.json() as { message: string }).message).toMatch(/over 3145728 bytes/);
    expect((await call(s, 'GET', '/healthz')).status).toBe(200);
  });

  it('answers 413 for an oversized chunked body (no Content-Length) too', async () => {
    const res = await new Promise<number>((resolve, reject) => {
      const req = request(
        { host: '127.0.0.1', servername: 'localhost', port: s.port, method: 'POST', path: '/mutate', ca: s.caPem },
        (r) => {
          r.resume();
          resolve(r.statusCode ?? 0);
        },
      );
      req.on('error', (err: NodeJS.ErrnoException) => (err.code === 'EPIPE' || err.code === 'ECONNRESET' ? undefined : reject(err)));
      const chunk = Buffer.alloc(256 * 1024, 0x20);
      for (let i = 0; i < 14; i++) req.write(chunk);
      req.end();
    });
    expect(res).toBe(413);
    expect((await call(s, 'GET', '/healthz')).status).toBe(200);
  });

  it('logs each admission with uid, namespace, pod name, decision and duration, and never the env values', async () => {
    await mutate(review(pod(), { uid: 'log-check-uid' }));
    const line = s.logLines().find((l) => l.uid === 'log-check-uid');
    expect(line).toMatchObject({ msg: 'admission', namespace: 'team-a', pod: 'chat-7d9f-', decision: 'injected', reason: 'injected' });
    expect(typeof line!.durationMs).toBe('number');
    expect(JSON.stringify(s.logLines())).not.toContain('SECRET');
  });
});

describe('other routes', () => {
  it('serves /healthz and /readyz', async () => {
    expect((await call(s, 'GET', '/healthz')).text).toBe('ok\n');
    const ready = await call(s, 'GET', '/readyz');
    expect(ready.status).toBe(200);
  });

  it('counts admissions by result and reason and records latency in /metrics', async () => {
    await mutate(review(pod({ [ANNOTATION_EXCLUDE_PORTS]: 'x' })));
    await mutate(review(pod(), { namespace: 'kube-system' }));
    const text = (await call(s, 'GET', '/metrics')).text;
    expect(text).toMatch(/aigress_webhook_admissions_total\{result="denied",reason="invalid-annotation"\} [1-9]/);
    expect(text).toMatch(/aigress_webhook_admissions_total\{result="skipped",reason="system-namespace"\} 1/);
    expect(text).toMatch(/aigress_webhook_admissions_total\{result="bad-request",reason="body-too-large"\} 2/);
    expect(text).toMatch(/aigress_webhook_admission_duration_seconds_count\{result="injected"\} [1-9]/);
  });

  it('answers 404 for unknown paths and 405 with Allow for a wrong method', async () => {
    expect((await call(s, 'GET', '/nope')).status).toBe(404);
    const wrong = await call(s, 'GET', '/mutate');
    expect(wrong.status).toBe(405);
    expect(wrong.headers.allow).toBe('POST');
  });

  it('mounts extra routes beside /mutate and refuses a duplicate', async () => {
    s.server.addRoute('POST', '/v1/echo', (req) => ({ status: 201, json: { got: req.body.toString('utf8'), q: req.url.searchParams.get('q') } }));
    const res = await call(s, 'POST', '/v1/echo?q=1', 'hello');
    expect(res.status).toBe(201);
    expect(res.json()).toEqual({ got: 'hello', q: '1' });
    expect(() => s.server.addRoute('POST', '/v1/echo', () => ({ status: 200 }))).toThrow(/already registered/);
  });

  it('turns a throwing handler into a 500 without crashing', async () => {
    s.server.addRoute('GET', '/v1/boom', () => {
      throw new Error('kaboom');
    });
    const res = await call(s, 'GET', '/v1/boom');
    expect(res.status).toBe(500);
    expect(res.json()).toEqual({ message: 'internal error' });
    expect((await call(s, 'GET', '/healthz')).status).toBe(200);
  });
});

describe('serving certificate from files', () => {
  const peerCert = (port: number, ca: string): Promise<X509Certificate> =>
    new Promise((resolve, reject) => {
      const sock = connect({ host: '127.0.0.1', port, servername: 'localhost', ca }, () => {
        const raw = sock.getPeerX509Certificate();
        sock.end();
        if (raw) resolve(raw);
        else reject(new Error('no peer certificate'));
      });
      sock.on('error', reject);
    });

  it('reloads the certificate when the files change, and keeps the last good pair when they are broken', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'aigress-webhook-tls-'));
    const first = await testPki();
    const second = await testPki();
    const certFile = join(dir, 'tls.crt');
    const keyFile = join(dir, 'tls.key');
    writeFileSync(certFile, first.serving.certPem);
    writeFileSync(keyFile, first.serving.keyPem);
    const w = await startWebhook({ pki: first, tls: { certFile, keyFile, reloadIntervalMs: 50 } });
    try {
      const before = await peerCert(w.port, first.caPem);
      // A cert without its key must not be picked up: the server keeps the last good pair.
      writeFileSync(certFile, second.serving.certPem);
      await new Promise((r) => setTimeout(r, 200));
      expect((await peerCert(w.port, first.caPem)).fingerprint256).toBe(before.fingerprint256);
      writeFileSync(keyFile, second.serving.keyPem);
      let after: X509Certificate | undefined;
      for (let i = 0; i < 100 && !after; i++) {
        await new Promise((r) => setTimeout(r, 50));
        after = await peerCert(w.port, second.caPem).catch(() => undefined);
      }
      expect(after?.fingerprint256).toBeDefined();
      expect(after!.fingerprint256).not.toBe(before.fingerprint256);
      expect(w.logLines().some((l) => l.msg === 'serving certificate reloaded')).toBe(true);
      expect(w.logLines().some((l) => l.msg === 'serving certificate not reloaded')).toBe(true);
    } finally {
      await w.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
