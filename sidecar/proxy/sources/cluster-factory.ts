import type { Registry } from 'prom-client';
import type { Logger } from '../../../shared/log.js';
import { clusterSources } from './cluster.js';
import type { CertificateSource, PolicySource } from './types.js';

// Cluster mode: certificates from the control plane's issuer (CSR + ServiceAccount token) and the policy from
// its policy endpoint. The implementation (sources/cluster.ts) plugs in here; the data plane only ever
// sees the CertificateSource / PolicySource pair.

export interface ClusterSourceOptions {
  /** Base URL of the control plane, e.g. https://aigress-webhook.aigress-system.svc:8443. */
  controlPlane: URL;
  /** Projected ServiceAccount token (audience aigress), re-read on every use: kubelet rotates it. */
  tokenFile: string;
  log: Logger;
  /** The pod's emptyDir (the CA bundle dir): the last good policy is kept there across container restarts. */
  bundleDir?: string;
  /** Where the sources' metrics (certificate renewal failures, policy fetches) go: the proxy's registry. */
  registry?: Registry;
}

export function createClusterSources(opts: ClusterSourceOptions): { certificates: CertificateSource; policy: PolicySource } {
  const { certificates, policy } = clusterSources({
    controlPlane: opts.controlPlane,
    tokenFile: opts.tokenFile,
    log: opts.log,
    stateDir: opts.bundleDir,
    registry: opts.registry,
  });
  return { certificates, policy };
}
