import type { CredentialMaterial } from '../../shared/credentials/material.js';
import type { ProviderId } from '../../shared/policy/types.js';
import type { HeaderList } from '../pipeline/header-list.js';

// Where each provider takes its credential, and every form in which an app may have sent its own. The app's
// credential is removed in all of them before the managed one is placed, so it never travels beside it. Pure:
// edits a request's headers and returns its new path.

/** Headers that carry a credential for any provider; removed whatever the provider. */
const APP_CREDENTIAL_HEADERS = ['authorization', 'api-key', 'x-api-key', 'x-goog-api-key', 'proxy-authorization'] as const;
/** Signature headers of an app's own SigV4 (bedrock); the proxy signs again. */
export const AWS_SIGNATURE_HEADERS = ['authorization', 'x-amz-date', 'x-amz-security-token', 'x-amz-content-sha256'] as const;
/** Query parameters that carry credentials: Google's `key`, Azure's `api-key`, and SigV4 presigning (`X-Amz-*`). */
const CREDENTIAL_QUERY = (name: string): boolean => {
  const n = name.toLowerCase();
  return n === 'key' || n === 'api-key' || n === 'access_token' || n.startsWith('x-amz-');
};

/**
 * Removes credential parameters from the query of `path`; the rest is kept byte for byte, in order. A path
 * without such a parameter comes back unchanged (so an unchanged request stays byte-exact).
 */
export function withoutCredentialQuery(path: string): string {
  const q = path.indexOf('?');
  if (q < 0) return path;
  const hash = path.indexOf('#', q);
  const query = path.slice(q + 1, hash < 0 ? undefined : hash);
  const parts = query.split('&');
  const kept = parts.filter((p) => {
    const eq = p.indexOf('=');
    const raw = eq < 0 ? p : p.slice(0, eq);
    let name = raw;
    try {
      name = decodeURIComponent(raw.replace(/\+/g, ' '));
    } catch {
      // undecodable: judged as written
    }
    return !CREDENTIAL_QUERY(name);
  });
  if (kept.length === parts.length) return path;
  const base = path.slice(0, q);
  return kept.length > 0 ? `${base}?${kept.join('&')}` : base;
}

/** Removes every credential the app sent (headers and query); returns the new path. */
export function stripAppCredentials(headers: HeaderList, path: string): string {
  for (const h of APP_CREDENTIAL_HEADERS) headers.delete(h);
  for (const h of AWS_SIGNATURE_HEADERS) headers.delete(h);
  return withoutCredentialQuery(path);
}

/**
 * Puts the managed credential where `provider` takes it (bedrock's is a signature, added in the sign phase).
 * Returns false when the material does not fit the provider (the caller fails closed).
 */
export function placeCredential(provider: ProviderId, m: CredentialMaterial, headers: HeaderList): boolean {
  switch (provider) {
    case 'openai':
    case 'mistral':
      if (m.kind !== 'api-key') return false;
      headers.set('authorization', `Bearer ${m.value}`);
      return true;
    case 'azure-openai':
      if (m.kind === 'api-key') headers.set('api-key', m.value);
      else if (m.kind === 'bearer') headers.set('authorization', `Bearer ${m.token}`);
      else return false;
      return true;
    case 'anthropic':
      // anthropic-version (and anthropic-beta) stay as the app sent them.
      if (m.kind !== 'api-key') return false;
      headers.set('x-api-key', m.value);
      return true;
    case 'gemini':
      if (m.kind !== 'api-key') return false;
      headers.set('x-goog-api-key', m.value);
      return true;
    case 'vertex-ai':
      if (m.kind !== 'bearer') return false;
      headers.set('authorization', `Bearer ${m.token}`);
      return true;
    case 'bedrock':
      return m.kind === 'aws';
  }
}
