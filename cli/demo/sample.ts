import { EGRESS_POLICY_API_VERSION, EGRESS_POLICY_KIND } from '../../shared/constants.js';
import type { Pod } from '../../webhook/inject/types.js';

// The demo's embedded inputs: a workload's pod as the ReplicaSet controller submits it, the AdmissionReview the
// API server wraps it in, and the EgressPolicy the proxy enforces. Nothing here is read from the user.

export const SAMPLE_NAMESPACE = 'team-a';
export const SAMPLE_WORKLOAD = 'chatbot';
const TEMPLATE_HASH = '6d5f8b7c9d';
/** The name the API server gives the pod after admission (generateName + a suffix); the downward API reports it. */
export const SAMPLE_POD_NAME = `${SAMPLE_WORKLOAD}-${TEMPLATE_HASH}-x7k2p`;
export const SAMPLE_SERVICE_ACCOUNT = 'chatbot';

/** A pod of Deployment `chatbot`: one unmodified Python container that calls OpenAI and Anthropic. */
export function samplePod(): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      generateName: `${SAMPLE_WORKLOAD}-${TEMPLATE_HASH}-`,
      namespace: SAMPLE_NAMESPACE,
      labels: { app: SAMPLE_WORKLOAD, 'pod-template-hash': TEMPLATE_HASH },
      ownerReferences: [
        {
          apiVersion: 'apps/v1',
          kind: 'ReplicaSet',
          name: `${SAMPLE_WORKLOAD}-${TEMPLATE_HASH}`,
          uid: '3f1c2b9e-5d4a-4e8f-9a61-7c0d2e4b8a10',
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
    },
    spec: {
      serviceAccountName: SAMPLE_SERVICE_ACCOUNT,
      containers: [
        {
          name: 'app',
          image: 'python:3.12-slim',
          command: ['python', '-m', 'chatbot'],
          ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }],
          env: [
            { name: 'OPENAI_API_KEY', valueFrom: { secretKeyRef: { name: 'openai', key: 'apiKey' } } },
            { name: 'ANTHROPIC_API_KEY', valueFrom: { secretKeyRef: { name: 'anthropic', key: 'apiKey' } } },
          ],
          resources: { requests: { cpu: '250m', memory: '256Mi' } },
        },
      ],
      restartPolicy: 'Always',
    },
  };
}

/** The AdmissionReview the API server sends for the ReplicaSet controller's CREATE of that pod. */
export function sampleAdmissionReview(uid: string): unknown {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid,
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      requestKind: { group: '', version: 'v1', kind: 'Pod' },
      requestResource: { group: '', version: 'v1', resource: 'pods' },
      namespace: SAMPLE_NAMESPACE,
      operation: 'CREATE',
      userInfo: { username: 'system:serviceaccount:kube-system:replicaset-controller', groups: ['system:serviceaccounts', 'system:authenticated'] },
      object: samplePod(),
      oldObject: null,
      dryRun: false,
      options: { apiVersion: 'meta.k8s.io/v1', kind: 'CreateOptions' },
    },
  };
}

export const DEMO_POLICY_NAME = 'demo';

/**
 * The policy, as a user would write it: every provider intercepted, US and EU processing only, GPT-4o and
 * Claude models but not the realtime preview, and a budget of output tokens for claude-haiku. Each call the demo
 * makes meets one of these rules.
 */
/** The demo's managed credential: the proxy reads it from --credentials-dir; the app sends a placeholder. */
export const DEMO_ANTHROPIC_SECRET = { name: 'anthropic-key', key: 'apiKey' } as const;
export const DEMO_MANAGED_ANTHROPIC_KEY = 'sk-ant-demo-managed-key-held-by-the-platform';
/** What the app sends instead (docs/credentials.md): not a key. */
export const DEMO_PLACEHOLDER_KEY = 'aigress-managed-credential';

export const DEMO_POLICY_YAML = `apiVersion: ${EGRESS_POLICY_API_VERSION}
kind: ${EGRESS_POLICY_KIND}
metadata: { name: ${DEMO_POLICY_NAME}, namespace: ${SAMPLE_NAMESPACE} }
spec:
  providers: [openai, azure-openai, anthropic, gemini, vertex-ai, bedrock, mistral]
  regions: { allow: [eu, us], unknown: deny }
  models: { allow: ["gpt-4o*", "claude-*"], deny: ["gpt-4o-realtime*"] }
  credentials: [{ provider: anthropic, secretRef: { name: ${DEMO_ANTHROPIC_SECRET.name}, key: ${DEMO_ANTHROPIC_SECRET.key} } }]
  filters:
    - { type: pii, name: pii-redact, detect: [email, credit-card], action: redact, restore: true }
  budgets: [{ tokens: 1000, type: output, per: 1m, scope: pod, models: ["claude-haiku-*"] }]
  unmatchedEgress: passthrough
`;
