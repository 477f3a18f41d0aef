import { SignatureV4 } from '@smithy/signature-v4';
import type { CredentialMaterial } from '../../shared/credentials/material.js';
import { NodeSha256 } from '../../shared/credentials/sha256.js';

// AWS Signature Version 4 over the request exactly as it goes on the wire (method, host, path and query,
// every header incl. content-length, the body's SHA-256), with @smithy/signature-v4, the AWS SDK's own signer.
// Region and signing service come from the host: bedrock-runtime[-fips].{region}.amazonaws.com signs as
// service `bedrock` in {region}.

const BEDROCK_HOST = /^bedrock-runtime(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com$/;

/** Region and signing name for a Bedrock runtime host; undefined for any other host. */
export function bedrockScope(host: string): { region: string; service: string } | undefined {
  const m = BEDROCK_HOST.exec(host);
  return m ? { region: m[1]!, service: 'bedrock' } : undefined;
}

export interface WireRequest {
  method: string;
  host: string;
  /** Path with query, as sent. */
  path: string;
  /** [name, value] pairs as sent (host and content-length included). */
  headers: readonly (readonly [string, string])[];
  body: Uint8Array;
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** The query as the signer wants it: decoded names and values (it encodes them canonically itself). */
function parseQuery(q: string): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const part of q.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const k = decode(eq < 0 ? part : part.slice(0, eq));
    const v = eq < 0 ? '' : decode(part.slice(eq + 1));
    const prev = out[k];
    out[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
  return out;
}

/**
 * The headers to set on `req` so that it carries a valid SigV4 signature: authorization, x-amz-date and (with
 * temporary credentials) x-amz-security-token.
 */
export async function signSigV4(
  req: WireRequest,
  creds: Extract<CredentialMaterial, { kind: 'aws' }>,
  scope: { region: string; service: string },
  now: Date,
): Promise<Record<string, string>> {
  const signer = new SignatureV4({
    credentials: { accessKeyId: creds.accessKeyId, secretAccessKey: creds.secretAccessKey, ...(creds.sessionToken && { sessionToken: creds.sessionToken }) },
    region: scope.region,
    service: scope.service,
    sha256: NodeSha256,
    // The wire path is already URI-encoded once; SigV4 for every service but S3 encodes it again.
    uriEscapePath: true,
    // As the AWS SDK signs Bedrock calls: the payload hash is in the signature, not in a header.
    applyChecksum: false,
  });
  const q = req.path.indexOf('?');
  const headers: Record<string, string> = {};
  for (const [n, v] of req.headers) {
    const k = n.toLowerCase();
    headers[k] = headers[k] === undefined ? v : `${headers[k]},${v}`;
  }
  const signed = await signer.sign(
    {
      method: req.method,
      protocol: 'https:',
      hostname: req.host,
      path: q < 0 ? req.path : req.path.slice(0, q),
      query: q < 0 ? {} : parseQuery(req.path.slice(q + 1)),
      headers,
      body: req.body,
    },
    { signingDate: now },
  );
  const added: Record<string, string> = {};
  for (const [k, v] of Object.entries(signed.headers)) if (headers[k.toLowerCase()] !== v) added[k.toLowerCase()] = v;
  return added;
}
