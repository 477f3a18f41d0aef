import type { Exchange } from './types.js';

// Whether the body as the app sent it must stay byte for byte: a Bedrock request the app signed with SigV4 is
// signed over its body, so any change breaks it unless the managed-credentials step signs it again.

/** The app signed the request itself with SigV4 (its signature covers the body as sent). */
export function appSigned(ex: Exchange): boolean {
  const a = ex.appHeaders.authorization;
  return typeof a === 'string' && a.startsWith('AWS4-HMAC-SHA256');
}

/** A managed-credentials step that re-signs Bedrock requests (the credentials capability) makes a rewrite safe. */
export function resignsBedrock(ex: Exchange): boolean {
  return ex.policy.spec.credentials.some((c) => c.provider === 'bedrock');
}
