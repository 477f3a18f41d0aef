import { chmodSync, chownSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { createCA } from '../../../shared/pki.js';
import { AIGRESS_BIN, REPO_ROOT } from './paths.js';
import type { Pod } from './pod-spec.js';
import { runOk } from './process.js';

// The pod under test, as the cluster would have it: an ordinary app pod run through `aigress inject` with a
// standalone-mode injection config (no control plane; the proxy gets --policy and --ca-dir), plus the files
// that config points at: the policy and the proxy's CA.

export const APP_UID = 1000;
export const PROXY_CA_CN = 'aigress e2e pod CA';

export interface InjectedPodFiles {
  pod: Pod;
  policyFile: string;
  caDir: string;
  caPem: string;
  /** Exactly what `aigress inject` printed. */
  injectedYaml: string;
}

/** What a suite may change about the pod: its policy, and env the app's own spec sets (credentials, say). */
export interface AppPodOptions {
  /** The EgressPolicy document; default `policyYaml()`. */
  policy?: string;
  /** More env entries in the app container's own spec. */
  appEnv?: Record<string, string>;
  /** Annotations on the pod (e.g. `aigress.io/include-outbound-ports`). */
  annotations?: Record<string, string>;
  /**
   * The pod's controller, as the API server shows it on a pod its ReplicaSet made (`aigress inject` derives the
   * workload from it), and the labels that come with it (a Deployment's `pod-template-hash`).
   */
  owner?: { apiVersion: string; kind: string; name: string; labels?: Record<string, string> };
  /** More containers' names in the spec (a mesh's sidecar, as its injector leaves it); never started. */
  extraContainers?: readonly string[];
  /** More proxy arguments (after --policy and --ca-dir). */
  proxyArgs?: readonly string[];
  /** Fields of the injection config's `capture` section. */
  capture?: Record<string, unknown>;
  /** `injection.proxy.telemetry` of the injection config (OTLP settings, audit log), as the chart values have it. */
  telemetry?: Record<string, unknown>;
}

/** The app's own pod spec, before injection: nothing in it knows about aigress. */
export function appPodYaml(
  keys: { openai: string; anthropic: string },
  appEnv: Record<string, string> = {},
  more: Pick<AppPodOptions, 'annotations' | 'extraContainers' | 'owner'> = {},
): string {
  const extra = Object.entries(appEnv).map(([name, value]) => `
        - { name: ${name}, value: ${JSON.stringify(value)} }`).join('');
  const annotations = more.annotations ? `\n  annotations: ${JSON.stringify(more.annotations)}` : '';
  const labels = JSON.stringify({ app: 'e2e-app', ...more.owner?.labels });
  const owner = more.owner
    ? `\n  ownerReferences: [${JSON.stringify({ apiVersion: more.owner.apiVersion, kind: more.owner.kind, name: more.owner.name, uid: '00000000-0000-4000-8000-00000000e2e0', controller: true, blockOwnerDeletion: true })}]`
    : '';
  const containers = (more.extraContainers ?? []).map((name) => `
    - { name: ${name}, image: registry.example.com/mesh/${name}:1 }`).join('');
  return `apiVersion: v1
kind: Pod
metadata:
  name: e2e-app
  namespace: team-a
  labels: ${labels}${annotations}${owner}
spec:
  serviceAccountName: e2e-app
  containers:
    - name: app
      image: registry.example.com/e2e/app:1
      command: [sleep, infinity]
      securityContext: { runAsUser: ${APP_UID}, runAsGroup: ${APP_UID}, allowPrivilegeEscalation: false, capabilities: { drop: [ALL] } }
      env:
        - { name: OPENAI_API_KEY, value: ${keys.openai} }
        - { name: ANTHROPIC_API_KEY, value: ${keys.anthropic} }${extra}${containers}
`;
}

export function policyYaml(): string {
  return `apiVersion: aigress.io/v1alpha1
kind: EgressPolicy
metadata: { name: e2e, namespace: team-a }
spec:
  providers: [openai, anthropic]
  models: { allow: [], deny: ["gpt-denied*"] }
  unmatchedEgress: passthrough
`;
}

/** Writes policy, CA and injection config under `dir`, runs `aigress inject`, and parses the pod it prints. */
export async function injectAppPod(
  dir: string,
  keys: { openai: string; anthropic: string },
  proxyUid: number,
  opts: AppPodOptions = {},
): Promise<InjectedPodFiles> {
  if (!existsSync(join(REPO_ROOT, 'dist/cli/main.js'))) {
    throw new Error('dist/ is missing: build first (npm run build, or npm run test:e2e which builds)');
  }
  const policyFile = join(dir, 'policy.yaml');
  writeFileSync(policyFile, opts.policy ?? policyYaml(), { mode: 0o644 });

  // The proxy's CA, readable by the proxy's UID only (like a mounted Secret with fsGroup).
  const caDir = join(dir, 'aigress-ca');
  mkdirSync(caDir, { mode: 0o700 });
  const ca = await createCA(PROXY_CA_CN, 2);
  writeFileSync(join(caDir, 'ca.crt'), ca.certPem, { mode: 0o644 });
  writeFileSync(join(caDir, 'ca.key'), ca.keyPem, { mode: 0o600 });
  for (const f of ['', 'ca.crt', 'ca.key']) chownSync(join(caDir, f), proxyUid, proxyUid);
  chmodSync(caDir, 0o700);

  const configFile = join(dir, 'inject-config.yaml');
  writeFileSync(
    configFile,
    JSON.stringify({
      injection: {
        controlPlane: { address: '' },
        proxy: { extraArgs: ['--policy', policyFile, '--ca-dir', caDir, ...(opts.proxyArgs ?? [])], ...(opts.telemetry && { telemetry: opts.telemetry }) },
        ...(opts.capture ? { capture: opts.capture } : {}),
      },
    }),
  );
  const podFile = join(dir, 'app-pod.yaml');
  writeFileSync(podFile, appPodYaml(keys, opts.appEnv, opts));
  const injectedYaml = await runOk(process.execPath, [AIGRESS_BIN, 'inject', '--config', configFile, '-f', podFile]);
  return { pod: parse(injectedYaml) as Pod, policyFile, caDir, caPem: ca.certPem, injectedYaml };
}
