import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import type { Registry } from 'prom-client';
import { UserError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import type { EgressPolicySpec } from '../shared/policy/types.js';
import { defaultPolicySpec } from '../shared/policy/validate.js';
import { CA_SECRET_NAME, type CaSource } from './ca.js';
import { startControlPlane, type ControlPlane } from './control-plane.js';
import type { MintingOptions } from './credentials/minting.js';
import { defaultKubeConfig, kubeClients } from './kube.js';
import { parseClusterDefault } from './policy/compile.js';

// `aigress webhook` flags for the control plane (CA, issuer, policies). It runs where there is a Kubernetes API
// to talk to: in a pod (the ServiceAccount mounted by the kubelet) or with --kubeconfig. Elsewhere the webhook
// serves admission only, as in development.

export interface ControlPlaneFlags {
  kubeconfig?: string;
  caSource?: string;
  caSecret?: string;
  caBootstrap?: boolean;
  caDir?: string;
  defaultPolicy?: string;
  serviceName?: string;
  stsEndpoint?: string;
  stsRegion?: string;
  entraAuthority?: string;
}

export interface ControlPlaneSettings {
  kubeconfig?: string;
  caSource: CaSource;
  defaultPolicyFile?: string;
  serviceName: string;
  namespace: string;
  minting?: MintingOptions;
}

export function addControlPlaneOptions(cmd: Command): Command {
  return cmd
    .option('--kubeconfig <file>', 'run the control plane against this cluster (default: in-cluster when running in a pod)')
    .option('--ca-source <source>', `where the CA comes from: secret (the ${CA_SECRET_NAME} Secret) or files (a mounted cert-manager Secret)`, 'secret')
    .option('--ca-secret <name>', 'name of the CA Secret in the control plane\'s namespace', CA_SECRET_NAME)
    .option('--no-ca-bootstrap', 'do not create the CA Secret when it is missing (fail instead)')
    .option('--ca-dir <dir>', 'with --ca-source files: directory with tls.crt and tls.key')
    .option('--default-policy <file>', 'cluster default EgressPolicy (YAML); default: every provider, no restrictions')
    .option('--service-name <name>', 'the control plane\'s Service (its DNS names go into the serving certificate)', 'aigress')
    .option('--sts-endpoint <url>', 'AWS STS endpoint for minting Bedrock temporary credentials (default: the global one, or the regional one with --sts-region)')
    .option('--sts-region <region>', 'signing region of STS calls, and the regional STS endpoint without --sts-endpoint (default us-east-1, global endpoint)')
    .option('--entra-authority <url>', 'Entra ID authority for minting Azure OpenAI tokens (default https://login.microsoftonline.com)');
}

/**
 * Which control plane to run, from flags and environment (pure): undefined when there is no cluster to talk to.
 * Every bad flag is a UserError naming it (exit code 2).
 */
export function controlPlaneSettings(f: ControlPlaneFlags, env: NodeJS.ProcessEnv, namespace: string): ControlPlaneSettings | undefined {
  const inCluster = !!env.KUBERNETES_SERVICE_HOST;
  if (!f.kubeconfig && !inCluster) return undefined;
  const source = f.caSource ?? 'secret';
  let caSource: CaSource;
  if (source === 'secret') {
    if (f.caDir) throw new UserError('--ca-dir goes with --ca-source files', 2);
    const name = f.caSecret ?? CA_SECRET_NAME;
    if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name)) throw new UserError(`--ca-secret ${JSON.stringify(name)}: not a valid Secret name`, 2);
    caSource = { kind: 'secret', namespace, name, bootstrap: f.caBootstrap !== false };
  } else if (source === 'files') {
    if (!f.caDir) throw new UserError('--ca-source files needs --ca-dir DIR (the mounted cert-manager Secret)', 2);
    caSource = { kind: 'files', dir: f.caDir };
  } else {
    throw new UserError(`--ca-source ${JSON.stringify(source)}: must be secret or files`, 2);
  }
  const serviceName = f.serviceName ?? 'aigress';
  if (!/^[a-z]([-a-z0-9]*[a-z0-9])?$/.test(serviceName)) throw new UserError(`--service-name ${JSON.stringify(serviceName)}: not a valid Service name`, 2);
  const minting: MintingOptions = {
    ...(f.stsEndpoint !== undefined && { stsEndpoint: endpointFlag('--sts-endpoint', f.stsEndpoint) }),
    ...(f.entraAuthority !== undefined && { entraAuthority: endpointFlag('--entra-authority', f.entraAuthority) }),
  };
  if (f.stsRegion !== undefined) {
    if (!/^[a-z]{2}(?:-[a-z0-9]+)+-\d+$/.test(f.stsRegion)) throw new UserError(`--sts-region ${JSON.stringify(f.stsRegion)}: not an AWS region (such as eu-central-1)`, 2);
    minting.stsRegion = f.stsRegion;
  }
  return { kubeconfig: f.kubeconfig, caSource, defaultPolicyFile: f.defaultPolicy, serviceName, namespace, ...(Object.keys(minting).length > 0 && { minting }) };
}

/** An endpoint the control plane sends long-lived secrets to: https, or http only on loopback (tests). */
function endpointFlag(flag: string, v: string): string {
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw new UserError(`${flag} ${JSON.stringify(v)}: not a URL`, 2);
  }
  const loopback = ['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname);
  if (u.protocol !== 'https:' && !(u.protocol === 'http:' && loopback)) throw new UserError(`${flag} ${JSON.stringify(v)}: must be https (http only on a loopback address)`, 2);
  if (u.username || u.password || u.search || u.hash) throw new UserError(`${flag} ${JSON.stringify(v)}: no credentials, query or fragment`, 2);
  return u.toString();
}

async function clusterDefault(file: string | undefined): Promise<EgressPolicySpec> {
  if (!file) return defaultPolicySpec();
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new UserError(`--default-policy ${file}: cannot read it: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  return parseClusterDefault(text, `--default-policy ${file}`);
}

/** Starts the control plane for `aigress webhook`; its routes go on the webhook's server, its metrics in `registry`. */
export async function startControlPlaneFromSettings(s: ControlPlaneSettings, log: Logger, registry: Registry): Promise<ControlPlane> {
  const defaults = await clusterDefault(s.defaultPolicyFile);
  const kc = defaultKubeConfig(s.kubeconfig);
  return startControlPlane({
    clients: kubeClients(kc),
    namespace: s.namespace,
    serviceName: s.serviceName,
    caSource: s.caSource,
    defaults,
    log,
    registry,
    minting: s.minting,
  });
}
