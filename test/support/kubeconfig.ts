import { writeFile } from 'node:fs/promises';

// A kubeconfig for the fake API server (test/support/fake-apiserver.ts): what a CLI run with --kubeconfig, or a
// control plane standing in for its in-cluster ServiceAccount, uses to reach it with its admin token.

export interface KubeconfigTarget {
  url: string;
  caPem: string;
  adminToken: string;
}

/** The kubeconfig text: one cluster ("fake", TLS verified against the server's CA as `localhost`), one user. */
export function kubeconfigYaml(api: KubeconfigTarget, user: string): string {
  return `apiVersion: v1
kind: Config
clusters:
  - name: fake
    cluster: { server: "${api.url}", certificate-authority-data: ${Buffer.from(api.caPem).toString('base64')}, tls-server-name: localhost }
users:
  - name: ${user}
    user: { token: ${api.adminToken} }
contexts:
  - name: fake
    context: { cluster: fake, user: ${user} }
current-context: fake
`;
}

export function writeKubeconfig(file: string, api: KubeconfigTarget, user: string): Promise<void> {
  return writeFile(file, kubeconfigYaml(api, user));
}
