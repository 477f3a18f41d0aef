import { materialFits, refId, type CredentialMaterial } from '../../shared/credentials/material.js';
import type { Credential, ProviderId } from '../../shared/policy/types.js';
import { placeCredential, stripAppCredentials } from '../credentials/placement.js';
import { bedrockScope, signSigV4 } from '../credentials/sigv4.js';
import type { PipelineContext } from './context.js';
import { CONTINUE, deny } from './deny.js';
import type { Exchange, PipelineServices, Processor, Verdict } from './types.js';

// Managed credentials (spec.credentials): after every policy step has passed, the app's own credential is
// removed in every form (headers, query, an AWS signature) and the managed one put where the provider takes it;
// for Bedrock the `sign` phase then signs the final request with SigV4. A provider without a managed
// credential keeps the app's, untouched. A managed credential that cannot be had fails closed (503): the app's
// key is never sent in its place.

/** Raised at build time: a policy names credentials but the proxy has nowhere to get them. */
export class NoCredentialSource extends Error {}

export function credentialProcessors(ctx: PipelineContext, services: PipelineServices): readonly Processor[] {
  const list = ctx.policy.spec.credentials;
  if (list.length === 0) return [];
  const source = services.credentials;
  if (!source) {
    throw new NoCredentialSource(
      'spec.credentials: this proxy has no credential source (standalone: --credentials-dir DIR; cluster mode: the control plane serves them)',
    );
  }
  const byProvider = new Map<ProviderId, Credential>(list.map((c) => [c.provider, c]));
  const release = source.use(list);
  /** Material found for this exchange by the credentials step, handed to the signer. */
  const awsOf = (ex: Exchange): { m?: Extract<CredentialMaterial, { kind: 'aws' }> } => ex.slot(byProvider, () => ({}));

  const unavailable = (c: Credential, why: string): Verdict =>
    deny('unavailable', 503, 'credential_unavailable',
      `aigress: the managed ${c.provider} credential (${refId(c.secretRef)}) is not available: ${why}; nothing was sent`);

  const lookup = async (ex: Exchange, c: Credential): Promise<CredentialMaterial | { error: string }> => {
    let m = source.get(c);
    if (m === undefined) {
      // Just started or the policy just changed: wait (within this step's deadline) for the first lookup.
      await source.settled(c, ex.signal);
      m = source.get(c);
    }
    return m ?? { error: 'not loaded yet' };
  };

  const replace: Processor = {
    name: 'credentials',
    type: 'credentials',
    phase: 'credentials',
    onRequest(ex) {
      const c = byProvider.get(ex.adapter.id);
      if (!c) return CONTINUE; // no managed credential for this provider: the app's own passes as today
      const apply = (m: CredentialMaterial | { error: string }): Verdict => {
        if ('error' in m) return unavailable(c, m.error);
        if (!materialFits(c.provider, m)) return unavailable(c, `a ${m.kind} credential does not fit ${c.provider}`);
        ex.request.path = stripAppCredentials(ex.request.headers, ex.request.path);
        placeCredential(c.provider, m, ex.request.headers);
        if (m.kind === 'aws') awsOf(ex).m = m;
        ex.facts.credential = 'managed';
        ex.actions.push({ processor: 'credentials', type: 'credentials', phase: 'credentials', action: 'replace' });
        return CONTINUE;
      };
      const now = source.get(c);
      // From memory on the hot path: no promise unless the source is still loading.
      return now === undefined ? lookup(ex, c).then(apply) : apply(now);
    },
    close: release,
  };
  if (!byProvider.has('bedrock')) return [replace];

  const sign: Processor = {
    name: 'sigv4',
    type: 'sigv4',
    phase: 'sign',
    async onRequest(ex) {
      const m = awsOf(ex).m;
      if (ex.adapter.id !== 'bedrock' || !m) return CONTINUE;
      const scope = bedrockScope(ex.request.host);
      if (!scope) return unavailable(byProvider.get('bedrock')!, `cannot tell the region of ${ex.request.host}`);
      const rq = ex.request;
      // The host the request is sent to, as signed (an app's Host may carry :443).
      rq.headers.set('host', rq.host);
      const added = await signSigV4(
        { method: rq.method, host: rq.host, path: rq.path, headers: rq.headers.entries(), body: rq.body.bytes() },
        m,
        scope,
        new Date(services.now()),
      );
      for (const [k, v] of Object.entries(added)) rq.headers.set(k, v);
      return CONTINUE;
    },
  };
  return [replace, sign];
}
