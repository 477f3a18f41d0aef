import { CA_BUNDLE_DIR, CA_BUNDLE_FILE, JAVA_TRUSTSTORE_FILE, JAVA_TRUSTSTORE_PASSWORD } from '../../shared/constants.js';
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

export interface EnvPlan {
  /** Variables to append to the container's env, in order. */
  add: EnvVar[];
  /** A new value for an existing JAVA_TOOL_OPTIONS entry at this index of the container's env. */
  javaUpdate?: { index: number; value: string };
  warnings: string[];
}

/** What to change in one container's env; pure. Containers aigress added itself are never passed here. */
export function planEnv(container: Container): EnvPlan {
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

  // envFrom's contents live in ConfigMaps and Secrets the webhook cannot see; an env entry beats them.
  if ((container.envFrom ?? []).length > 0 && plan.add.length > 0) {
    plan.warnings.push(
      `container "${container.name}" uses envFrom: aigress's env entries override any ${plan.add.map((e) => e.name).join(', ')} set there`,
    );
  }
  return plan;
}
