import type { ProviderId } from './policy/types.js';
import { compileHostMatcher } from './providers/index.js';

// Which host names go into a namespace's leaf certificate. Shared: the issuer (webhook/issuer.ts) signs exactly
// these, and the proxy (sidecar/proxy/sources/cluster.ts) asks for exactly these.
//
// A DNS wildcard stands for exactly one whole left-most label (RFC 6125 §6.4.3; Go, Java, Python and browsers
// reject anything else). That settles it provider by provider:
//   - Azure OpenAI: `<resource>.openai.azure.com` → `*.openai.azure.com` is a valid wildcard and covers them all.
//   - Bedrock: `bedrock-runtime.<region>.amazonaws.com` → the region is the middle label; `*.amazonaws.com` does
//     not cover it (and would be far too broad), so known regions are listed from a table.
//   - Vertex AI: `<region>-aiplatform.googleapis.com` → `*-aiplatform…` is a partial-label wildcard most clients
//     refuse, and `*.googleapis.com` would impersonate every Google API; known regions are listed.
//   - The others have fixed hosts.
// A host of an enabled provider that is in no table (a region launched after this build) is still issuable: the
// proxy asks for a certificate for that one host on demand, and the issuer accepts any concrete host the
// provider catalogue says belongs to an enabled provider. So the table is an optimisation (one certificate for
// the usual hosts), never a limit.

/** Vertex AI regions with a regional endpoint (`<region>-aiplatform.googleapis.com`). */
export const VERTEX_REGIONS: readonly string[] = [
  'us-central1', 'us-east1', 'us-east4', 'us-east5', 'us-south1', 'us-west1', 'us-west2', 'us-west3', 'us-west4',
  'northamerica-northeast1', 'northamerica-northeast2', 'southamerica-east1', 'southamerica-west1',
  'europe-central2', 'europe-north1', 'europe-southwest1', 'europe-west1', 'europe-west2', 'europe-west3',
  'europe-west4', 'europe-west6', 'europe-west8', 'europe-west9', 'europe-west12',
  'asia-east1', 'asia-east2', 'asia-northeast1', 'asia-northeast2', 'asia-northeast3', 'asia-south1',
  'asia-southeast1', 'asia-southeast2', 'australia-southeast1', 'australia-southeast2',
  'me-central1', 'me-central2', 'me-west1', 'africa-south1',
];

/** AWS regions where Bedrock runtime is offered. */
export const BEDROCK_REGIONS: readonly string[] = [
  'us-east-1', 'us-east-2', 'us-west-1', 'us-west-2', 'us-gov-east-1', 'us-gov-west-1', 'ca-central-1', 'sa-east-1',
  'eu-central-1', 'eu-central-2', 'eu-north-1', 'eu-south-1', 'eu-south-2', 'eu-west-1', 'eu-west-2', 'eu-west-3',
  'ap-northeast-1', 'ap-northeast-2', 'ap-northeast-3', 'ap-south-1', 'ap-south-2', 'ap-southeast-1',
  'ap-southeast-2', 'ap-southeast-3', 'ap-southeast-4', 'me-central-1', 'il-central-1',
];

/** Regions with FIPS endpoints (`bedrock-runtime-fips.<region>.amazonaws.com`). */
const BEDROCK_FIPS_REGIONS: readonly string[] = ['us-east-1', 'us-east-2', 'us-west-2', 'us-gov-east-1', 'us-gov-west-1', 'ca-central-1'];

const TABLE: Record<ProviderId, readonly string[]> = {
  openai: ['api.openai.com', 'eu.api.openai.com'],
  'azure-openai': ['*.openai.azure.com'],
  anthropic: ['api.anthropic.com'],
  gemini: ['generativelanguage.googleapis.com'],
  'vertex-ai': ['aiplatform.googleapis.com', ...VERTEX_REGIONS.map((r) => `${r}-aiplatform.googleapis.com`)],
  bedrock: [
    ...BEDROCK_REGIONS.map((r) => `bedrock-runtime.${r}.amazonaws.com`),
    ...BEDROCK_FIPS_REGIONS.map((r) => `bedrock-runtime-fips.${r}.amazonaws.com`),
  ],
  mistral: ['api.mistral.ai'],
};

/** The names of the main leaf certificate for a policy's providers, in provider order, without duplicates. */
export function certificateNames(providers: readonly ProviderId[]): string[] {
  return [...new Set(providers.flatMap((p) => TABLE[p]))];
}

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** A lower-case DNS name (no trailing dot), optionally with a `*` as its whole first label. */
export function isDnsName(name: string): boolean {
  if (name.length === 0 || name.length > 253) return false;
  const labels = name.split('.');
  if (labels.length < 2) return false;
  return labels.every((l, i) => (i === 0 && l === '*' ? labels.length > 2 : LABEL.test(l)));
}

/**
 * Whether the issuer may put `name` into a certificate for a namespace whose policy enables `providers`: a
 * table name (wildcards only from the table), or a concrete host the provider catalogue assigns to one of them.
 */
export function nameIssuable(name: string, providers: readonly ProviderId[]): boolean {
  if (!isDnsName(name)) return false;
  if (certificateNames(providers).includes(name)) return true;
  if (name.startsWith('*.')) return false;
  return compileHostMatcher(providers)(name) !== undefined;
}

/** Whether a certificate for `names` is valid for `host` (exact, or one-label wildcard), as TLS clients check it. */
export function namesCover(names: readonly string[], host: string): boolean {
  const h = host.toLowerCase().replace(/\.$/, '');
  for (const n of names) {
    if (n === h) return true;
    if (n.startsWith('*.')) {
      const dot = h.indexOf('.');
      if (dot > 0 && h.slice(dot + 1) === n.slice(2)) return true;
    }
  }
  return false;
}
