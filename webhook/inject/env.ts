import { CA_BUNDLE_DIR, CA_BUNDLE_FILE, JAVA_TRUSTSTORE_FILE, JAVA_TRUSTSTORE_PASSWORD } from '../../shared/constants.js';
import type { ProviderId } from '../../shared/policy/types.js';
import type { Container, EnvVar } from './types.js';

// The variables that point each TLS stack in an app container at the bundle (public roots + the aigress CA).
// A value the container already sets wins: aigress never silently clobbers it, and says so in a warning.

export const CA_BUNDLE_PATH = `${CA_BUNDLE_DIR}/${CA_BUNDLE_FILE}`;

/** OpenSSL/Go/Ruby, Node.js, Python requests, curl, the AWS SDKs, gRPC core: each reads its own variable. */
export const CA_ENV_NAMES = [
  'SSL_CERT_FILE',
  'NODE_EXTRA_CA_CERTS',
  'REQUESTS_CA_BUNDLE',
  'CURL_CA_BUNDLE',
  'AWS_CA_BUNDLE',
  'GRPC_DEFAULT_SSL_ROOTS_FILE_PATH',
] as const;

export const JAVA_ENV_NAME = 'JAVA_TOOL_OPTIONS';
export const JAVA_TRUST_FLAGS = [
  `-Djavax.net.ssl.trustStore=${CA_BUNDLE_DIR}/${JAVA_TRUSTSTORE_FILE}`,
  '-Djavax.net.ssl.trustStoreType=PKCS12',
  `-Djavax.net.ssl.trustStorePassword=${JAVA_TRUSTSTORE_PASSWORD}`,
].join(' ');

/**
 * The value injected into OPENAI_API_KEY / ANTHROPIC_API_KEY when the namespace has a managed credential for that
 * provider and the container sets neither: the SDKs refuse to start without a key, and the proxy replaces this
 * one (docs/credentials.md). It is not a secret and grants nothing.
 */
export const CREDENTIAL_PLACEHOLDER = 'aigress-managed-credential';
/** The SDK variables that get the placeholder, by provider. */
export const PLACEHOLDER_ENV: Readonly<Partial<Record<ProviderId, string>>> = { openai: 'OPENAI_API_KEY', anthropic: 'ANTHROPIC_API_KEY' };

export interface EnvPlan {
  /** Variables to append to the container's env, in order. */
  add: EnvVar[];
  /** A new value for an existing JAVA_TOOL_OPTIONS entry at this index of the container's env. */
  javaUpdate?: { index: number; value: string };
  warnings: string[];
}

/** What to change in one container's env; pure. Containers aigress added itself are never passed here. */
export function planEnv(container: Container, managed: readonly ProviderId[] = []): EnvPlan {
  const env = container.env ?? [];
  // The last entry of a name is the one the kubelet uses.
  const lastIndex = (name: string): number => env.map((e) => e.name).lastIndexOf(name);
  const plan: EnvPlan = { add: [], warnings: [] };
  const kept: string[] = [];
  for (const name of CA_ENV_NAMES) {
    const i = lastIndex(name);
    if (i < 0) plan.add.push({ name, value: CA_BUNDLE_PATH });
    else if (env[i]!.value !== CA_BUNDLE_PATH || env[i]!.valueFrom) kept.push(name);
  }
  if (kept.length > 0) {
    plan.warnings.push(
      `container "${container.name}" already sets ${kept.join(', ')}: left as set, so the clients reading ${
        kept.length === 1 ? 'it' : 'them'
      } may not trust the aigress CA`,
    );
  }

  const j = lastIndex(JAVA_ENV_NAME);
  const java = j < 0 ? undefined : env[j]!;
  if (!java) {
    plan.add.push({ name: JAVA_ENV_NAME, value: JAVA_TRUST_FLAGS });
  } else if (java.valueFrom) {
    plan.warnings.push(
      `container "${container.name}" sets ${JAVA_ENV_NAME} from ${Object.keys(java.valueFrom).join(', ')}: aigress cannot append its trust-store flags, so Java may not trust the aigress CA`,
    );
  } else if (!(java.value ?? '').includes(JAVA_TRUST_FLAGS)) {
    const current = (java.value ?? '').trim();
    plan.javaUpdate = { index: j, value: current === '' ? JAVA_TRUST_FLAGS : `${current} ${JAVA_TRUST_FLAGS}` };
    if (/-Djavax\.net\.ssl\.trustStore=/.test(current)) {
      plan.warnings.push(
        `container "${container.name}" sets its own -Djavax.net.ssl.trustStore in ${JAVA_ENV_NAME}: aigress's, appended after it, takes precedence`,
      );
    }
  }

  // The SDK key placeholders: only where the container sets no such variable (an envFrom might, unseen: left alone).
  const envFrom = (container.envFrom ?? []).length > 0;
  const placeholders: string[] = [];
  for (const provider of managed) {
    const name = PLACEHOLDER_ENV[provider];
    if (name === undefined || lastIndex(name) >= 0 || envFrom) continue;
    plan.add.push({ name, value: CREDENTIAL_PLACEHOLDER });
    placeholders.push(name);
  }
  if (placeholders.length > 0) {
    plan.warnings.push(
      `container "${container.name}": ${placeholders.join(', ')} set to the placeholder "${CREDENTIAL_PLACEHOLDER}"; the namespace has a managed credential, which the aigress proxy puts on each call instead (docs/credentials.md)`,
    );
  }

  // envFrom's contents live in ConfigMaps and Secrets the webhook cannot see; an env entry beats them.
  if (envFrom && plan.add.length > 0) {
    plan.warnings.push(
      `container "${container.name}" uses envFrom: aigress's env entries override any ${plan.add.map((e) => e.name).join(', ')} set there`,
    );
  }
  return plan;
}
