import { randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from '../../shared/log.js';
import { issueLeaf, type CertificateAuthority } from '../../shared/pki.js';
import type { InjectionConfig } from '../../webhook/config.js';
import { inject } from '../../webhook/inject/inject.js';
import type { Pod } from '../../webhook/inject/types.js';
import { createWebhookServer } from '../../webhook/server.js';
import { DemoFailure } from './failure.js';
import { httpsCall } from './https-client.js';
import { applyPatch, checkPatch, type PatchOp } from './json-patch.js';
import { summarizeInjection, type InjectedPodSummary } from './pod-summary.js';
import { SAMPLE_NAMESPACE, sampleAdmissionReview, samplePod } from './sample.js';
import { isObj } from '../../shared/json.js';

// Step 1, the API server's side of admission played honestly: the control plane's webhook server on loopback
// with a serving certificate from the demo CA, one AdmissionReview over HTTPS verified against that CA for the
// Service name the API server would use, the base64 JSONPatch decoded and applied.

export interface AdmissionStep {
  /** The Service name the webhook's certificate was verified for. */
  serviceName: string;
  webhookPort: number;
  patch: PatchOp[];
  /** The pod as the API server would store it. */
  pod: Pod;
  summary: InjectedPodSummary;
  warnings: string[];
  /** The applied result equals the pod the injection code computed itself. */
  matchesInjector: boolean;
}


export async function admitSamplePod(opts: { ca: CertificateAuthority; caPem: string; injection: InjectionConfig; logger: Logger }): Promise<AdmissionStep> {
  const serviceName = `aigress.${opts.injection.controlPlane.namespace}.svc`;
  const serving = await issueLeaf(opts.ca, { dnsNames: [serviceName, 'localhost'] });
  const server = await createWebhookServer({ tls: { certPem: serving.certPem, keyPem: serving.keyPem }, logger: opts.logger, injection: opts.injection });
  const uid = randomUUID();
  let webhookPort: number;
  let answer;
  try {
    webhookPort = await server.listen(0, '127.0.0.1');
    answer = await httpsCall({
      port: webhookPort,
      servername: serviceName,
      ca: opts.caPem,
      method: 'POST',
      path: '/mutate?timeout=10s',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify(sampleAdmissionReview(uid)),
    }).catch((err: unknown) => {
      throw new DemoFailure('admission', `the webhook call failed: ${(err as Error).message}`);
    });
  } finally {
    await server.close();
  }
  if (answer.status !== 200) throw new DemoFailure('admission', `the webhook answered HTTP ${answer.status}: ${answer.body.slice(0, 200)}`);
  const review: unknown = JSON.parse(answer.body);
  const response = isObj(review) && isObj(review.response) ? review.response : undefined;
  if (!response) throw new DemoFailure('admission', 'the webhook answer has no AdmissionReview response');
  if (response.uid !== uid) throw new DemoFailure('admission', `the response uid ${String(response.uid)} does not match the request's ${uid}`);
  if (response.allowed !== true) throw new DemoFailure('admission', `the pod was not admitted: ${JSON.stringify(response.status ?? {})}`);
  if (response.patchType !== 'JSONPatch' || typeof response.patch !== 'string') throw new DemoFailure('admission', 'the pod was admitted without a JSONPatch: nothing was injected');

  let patch: PatchOp[];
  let pod: Pod;
  try {
    patch = checkPatch(JSON.parse(Buffer.from(response.patch, 'base64').toString('utf8')));
    pod = applyPatch(samplePod(), patch);
  } catch (err) {
    throw new DemoFailure('admission', `the patch does not apply: ${(err as Error).message}`);
  }
  const own = inject(samplePod(), { namespace: SAMPLE_NAMESPACE }, opts.injection);
  const warnings = Array.isArray(response.warnings) ? response.warnings.map(String) : [];
  return {
    serviceName,
    webhookPort,
    patch,
    pod,
    summary: summarizeInjection(samplePod(), pod),
    warnings,
    matchesInjector: own.pod !== undefined && isDeepStrictEqual(own.pod, pod),
  };
}
