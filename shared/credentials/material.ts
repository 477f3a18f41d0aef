import type { Credential, ProviderId, SecretRef } from '../policy/types.js';
import { isObj } from '../json.js';

// What a managed credential resolves to, ready for the proxy to put on a request. The same shape travels from
// the control plane to the proxy (GET /v1/credentials) and comes out of a standalone credentials directory, so
// the proxy's processors never learn where a key came from. Values are secrets: never logged, never written.

export type CredentialMaterial =
  /** An API key (openai, mistral, anthropic, gemini, azure-openai api-key). */
  | { readonly kind: 'api-key'; readonly value: string }
  /** A bearer access token (azure-openai entra, vertex-ai), with its expiry when known (ms since the epoch). */
  | { readonly kind: 'bearer'; readonly token: string; readonly expiresAt?: number }
  /** AWS credentials for SigV4 (bedrock): static keys, or STS temporary ones with a session token (and expiry when minted). */
  | { readonly kind: 'aws'; readonly accessKeyId: string; readonly secretAccessKey: string; readonly sessionToken?: string; readonly expiresAt?: number };

/** Why a credential could not be resolved (never a value). */
export type Unresolved = { readonly error: string };

/** `name/key` of a Secret reference, for log fields and maps. */
export const refId = (r: SecretRef): string => `${r.name}/${r.key}`;

/** The Secret keys a credential reads (secretRef.key first). */
export function keysOf(c: Credential): string[] {
  return [c.secretRef.key, ...[c.accessKeyIdKey, c.sessionTokenKey, c.tenantIdKey, c.clientIdKey].filter((k): k is string => k !== undefined)];
}

/** Two credentials name the same material (same provider, Secret, keys and presentation). */
export function sameCredential(a: Credential, b: Credential): boolean {
  return (
    a.provider === b.provider &&
    a.secretRef.name === b.secretRef.name &&
    a.secretRef.key === b.secretRef.key &&
    (a.azureAuth ?? 'api-key') === (b.azureAuth ?? 'api-key') &&
    a.accessKeyIdKey === b.accessKeyIdKey &&
    a.sessionTokenKey === b.sessionTokenKey &&
    a.roleArn === b.roleArn &&
    a.roleSessionName === b.roleSessionName &&
    a.tenantIdKey === b.tenantIdKey &&
    a.clientIdKey === b.clientIdKey
  );
}

/** A header value must not carry a line break or other control characters (header injection). */
function hasControl(v: string): boolean {
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

/** Mints a bearer token from a vertex-ai service-account key (vertex-token.ts); injected so tests hold the clock. */
export type VertexMinter = (serviceAccountKeyJson: string) => { token: string; expiresAt: number };

/**
 * Exchanges what a Secret holds for short-lived credentials (the control plane's STS and Entra ID minters,
 * webhook/credentials/minting.ts). Synchronous: it answers from what has been minted, and schedules the rest.
 */
export interface RemoteMinters {
  /** Long-lived AWS keys (or any keys, with roleArn) for STS temporary credentials. */
  aws(c: Credential, keys: { accessKeyId: string; secretAccessKey: string; sessionToken?: string }): CredentialMaterial | Unresolved;
  /** An Entra ID app registration's client credentials for an access token. */
  entra(c: Credential, app: { tenantId: string; clientId: string; clientSecret: string }): CredentialMaterial | Unresolved;
}

/**
 * Resolves one credential from its Secret's values (`read(key)`: the value of a data key, undefined when absent).
 * Values are trimmed: a key file written with `echo` ends in a newline that must not go into a header.
 */
export function resolveCredential(c: Credential, read: (key: string) => string | undefined, mintVertex: VertexMinter, remote?: RemoteMinters): CredentialMaterial | Unresolved {
  const get = (key: string): string | undefined => {
    const v = read(key)?.trim();
    return v === undefined || v === '' ? undefined : v;
  };
  const secret = get(c.secretRef.key);
  if (secret === undefined) return { error: `key ${c.secretRef.key} missing or empty in ${c.secretRef.name}` };
  const bad = hasControl;
  switch (c.provider) {
    case 'bedrock': {
      const id = c.accessKeyIdKey ? get(c.accessKeyIdKey) : undefined;
      if (id === undefined) return { error: `key ${c.accessKeyIdKey ?? '(accessKeyIdKey)'} missing or empty in ${c.secretRef.name}` };
      const session = c.sessionTokenKey ? get(c.sessionTokenKey) : undefined;
      if (c.sessionTokenKey && session === undefined) return { error: `key ${c.sessionTokenKey} missing or empty in ${c.secretRef.name}` };
      if (bad(id) || bad(secret) || (session !== undefined && bad(session))) return { error: `a value in ${c.secretRef.name} has control characters` };
      const keys = { accessKeyId: id, secretAccessKey: secret, ...(session !== undefined && { sessionToken: session }) };
      // Long-lived keys (no session token) never reach a proxy where a control plane can exchange them.
      if (remote && (c.roleArn !== undefined || session === undefined)) return remote.aws(c, keys);
      if (c.roleArn !== undefined) return { error: `roleArn needs the control plane (cluster mode): a standalone proxy does not call STS` };
      return { kind: 'aws', accessKeyId: id, secretAccessKey: secret, ...(session !== undefined && { sessionToken: session }) };
    }
    case 'vertex-ai': {
      try {
        const { token, expiresAt } = mintVertex(secret);
        return { kind: 'bearer', token, expiresAt };
      } catch (err) {
        return { error: `${c.secretRef.name}/${c.secretRef.key} is not a usable service-account key: ${(err as Error).message}` };
      }
    }
    default:
      if (bad(secret)) return { error: `the value of ${c.secretRef.name}/${c.secretRef.key} has control characters` };
      if (c.provider === 'azure-openai' && c.azureAuth === 'entra') {
        if (c.tenantIdKey === undefined || c.clientIdKey === undefined) return { kind: 'bearer', token: secret };
        const tenantId = get(c.tenantIdKey);
        const clientId = get(c.clientIdKey);
        if (tenantId === undefined) return { error: `key ${c.tenantIdKey} missing or empty in ${c.secretRef.name}` };
        if (clientId === undefined) return { error: `key ${c.clientIdKey} missing or empty in ${c.secretRef.name}` };
        if (bad(tenantId) || bad(clientId)) return { error: `a value in ${c.secretRef.name} has control characters` };
        if (!remote) return { error: `tenantIdKey/clientIdKey need the control plane (cluster mode): a standalone proxy does not mint Entra ID tokens` };
        return remote.entra(c, { tenantId, clientId, clientSecret: secret });
      }
      return { kind: 'api-key', value: secret };
  }
}

/** Checks material received from the control plane (untrusted input until checked). */
export function parseMaterial(v: unknown): CredentialMaterial | undefined {
  if (!isObj(v)) return undefined;
  const str = (x: unknown): x is string => typeof x === 'string' && x !== '' && !hasControl(x);
  if (v.kind === 'api-key' && str(v.value)) return { kind: 'api-key', value: v.value };
  if (v.kind === 'bearer' && str(v.token)) {
    return { kind: 'bearer', token: v.token, ...(typeof v.expiresAt === 'number' && { expiresAt: v.expiresAt }) };
  }
  if (v.kind === 'aws' && str(v.accessKeyId) && str(v.secretAccessKey) && (v.sessionToken === undefined || str(v.sessionToken))) {
    return {
      kind: 'aws',
      accessKeyId: v.accessKeyId,
      secretAccessKey: v.secretAccessKey,
      ...(v.sessionToken !== undefined && { sessionToken: v.sessionToken as string }),
      ...(typeof v.expiresAt === 'number' && { expiresAt: v.expiresAt }),
    };
  }
  return undefined;
}

/** The material kind each provider's placement takes. */
export function materialFits(provider: ProviderId, m: CredentialMaterial): boolean {
  if (provider === 'bedrock') return m.kind === 'aws';
  if (provider === 'vertex-ai') return m.kind === 'bearer';
  if (provider === 'azure-openai') return m.kind === 'api-key' || m.kind === 'bearer';
  return m.kind === 'api-key';
}
