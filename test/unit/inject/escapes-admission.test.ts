import { describe, expect, it } from 'vitest';
import { admit } from '../../../webhook/admission.js';
import { defaultConfig, type InjectionConfig } from '../../../webhook/config.js';

// The admission answer for a pod with a container that could bypass capture: refused by default (the message names
// the container and the field), admitted with a warning under `escapingContainers: warn`.

const config = defaultConfig().injection;
const review = (spec: Record<string, unknown>): string =>
  JSON.stringify({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: 'u-1',
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      namespace: 'team-a',
      operation: 'CREATE',
      object: { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec },
    },
  });
const netRaw = { containers: [{ name: 'app', image: 'a' }, { name: 'ping', image: 'p', securityContext: { capabilities: { add: ['NET_RAW'] } } }] };
type Response = { uid: string; allowed: boolean; status?: { code: number; message: string }; warnings?: string[]; patch?: string };
const responseOf = (body: unknown): Response => (body as { response: Response }).response;

describe('admission of a pod that could bypass capture', () => {
  it('denies it by default with 403 and a message naming the container and field', () => {
    const out = admit(review(netRaw), config);
    expect(out).toMatchObject({ status: 200, result: 'denied', reason: 'capability-conflict' });
    const r = responseOf(out.body);
    expect(r).toMatchObject({ uid: 'u-1', allowed: false, status: { code: 403 } });
    expect(r.status!.message).toMatch(/^container "ping" adds NET_RAW \(securityContext.capabilities.add\)/);
    expect(r.patch).toBeUndefined();
    const gid = admit(review({ securityContext: { runAsGroup: 1500 }, containers: [{ name: 'app' }] }), config);
    expect(gid).toMatchObject({ result: 'denied', reason: 'identity-conflict' });
    expect(responseOf(gid.body).status!.message).toMatch(/^container "app" runs as GID 1500 \(the pod's securityContext.runAsGroup\)/);
  });

  it('with escapingContainers: warn, admits it with the patch and the message as an admission warning', () => {
    const warn: InjectionConfig = { ...config, capture: { ...config.capture, escapingContainers: 'warn' } };
    const out = admit(review(netRaw), warn);
    expect(out).toMatchObject({ result: 'injected', reason: 'injected' });
    const r = responseOf(out.body);
    expect(r.allowed).toBe(true);
    expect(r.patch).toBeTypeOf('string');
    expect(r.warnings?.[0]).toMatch(/^container "ping" adds NET_RAW \(securityContext.capabilities.add\).*escapingContainers: warn admitted it\)$/);
  });
});
