import type { Command } from 'commander';
import { UserError } from '../shared/errors.js';
import { createLogger, type Logger } from '../shared/log.js';
import { createCA, issueLeaf, loadCA } from '../shared/pki.js';
import { Registry } from 'prom-client';
import { loadConfig, withRuntimeDefaults } from './config.js';
import { addControlPlaneOptions, controlPlaneSettings, startControlPlaneFromSettings, type ControlPlaneFlags } from './control-plane-flags.js';
import { createWebhookMetrics } from './metrics.js';
import { createWebhookServer, type TlsSource } from './server.js';

interface WebhookFlags extends ControlPlaneFlags {
  config?: string;
  tlsCert?: string;
  tlsKey?: string;
  port?: string;
  host?: string;
}

function parsePort(text: string): number {
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!(n >= 1 && n <= 65535)) throw new UserError(`--port ${JSON.stringify(text)}: must be a port number (1-65535)`, 2);
  return n;
}

// Without a certificate the webhook serves a throwaway one, so `aigress webhook` runs with no setup for
// development. The API server cannot verify it (no caBundle matches), so it is never what a cluster uses.
async function ephemeralCertificate(namespace: string, log: Logger): Promise<TlsSource> {
  const caPem = await createCA('aigress webhook ephemeral CA', 1);
  const ca = await loadCA(caPem.certPem, caPem.keyPem);
  const leaf = await issueLeaf(ca, { dnsNames: ['localhost', `aigress.${namespace}.svc`, `aigress.${namespace}.svc.cluster.local`] });
  log.warn('no --tls-cert/--tls-key: serving an ephemeral self-signed certificate (development only; the API server will not trust it)');
  return { certPem: leaf.certPem, keyPem: leaf.keyPem };
}

export function registerWebhook(program: Command): void {
  const cmd = program
    .command('webhook')
    .description('Run the control plane: the mutating admission webhook (HTTPS).')
    .option('--config <file>', 'control-plane config (YAML); default: built-in defaults')
    .option('--tls-cert <file>', 'serving certificate (PEM); reloaded when it changes on disk')
    .option('--tls-key <file>', 'serving key (PEM); reloaded with the certificate')
    .option('--port <port>', 'HTTPS port (default: the config\'s server.port, 8443)')
    .option('--host <address>', 'listen address (default: all interfaces)');
  addControlPlaneOptions(cmd)
    .action(async (flags: WebhookFlags) => {
      const config = await loadConfig(flags.config);
      const port = flags.port === undefined ? config.server.port : parsePort(flags.port);
      const certFile = flags.tlsCert ?? (config.server.tlsCert || undefined);
      const keyFile = flags.tlsKey ?? (config.server.tlsKey || undefined);
      if ((certFile === undefined) !== (keyFile === undefined)) {
        throw new UserError('--tls-cert and --tls-key go together: give both or neither', 2);
      }
      const log = createLogger('webhook');
      // With a cluster to talk to, the control plane (CA, issuer, policies) runs here and serves with a
      // certificate from its own CA; proxies get that CA to verify it.
      const cpSettings = controlPlaneSettings(flags, process.env, config.injection.controlPlane.namespace);
      if (cpSettings && (certFile || keyFile)) {
        throw new UserError('--tls-cert/--tls-key cannot be used with the control plane: it issues its own serving certificate from its CA', 2);
      }
      const registry = new Registry();
      const cp = cpSettings ? await startControlPlaneFromSettings(cpSettings, log, registry) : undefined;
      const tls: TlsSource = cp
        ? { certPem: cp.serving.current().certPem, keyPem: cp.serving.current().keyPem }
        : certFile && keyFile
          ? { certFile, keyFile, reloadIntervalMs: config.server.certReloadSeconds * 1000 }
          : await ephemeralCertificate(config.injection.controlPlane.namespace, log);
      const base = withRuntimeDefaults(config.injection, process.env);
      const injection = cp ? { ...base, controlPlane: { ...base.controlPlane, caPem: cp.caPem } } : base;
      const server = await createWebhookServer({ tls, logger: log, injection, metrics: createWebhookMetrics(registry), ...(cp && { managedCredentials: (ns: string) => cp.managedCredentials(ns) }) }).catch((err: unknown) => {
        const e = err as NodeJS.ErrnoException;
        throw new UserError(`cannot load the TLS certificate (${certFile}, ${keyFile}): ${e.code ?? e.message.split('\n')[0]}`);
      });
      if (cp) {
        for (const r of cp.routes) server.addRoute(r.method, r.path, r.handler, r.options);
        server.setReadiness(() => cp.readiness());
        cp.serving.onRenew((p) => server.server.setSecureContext({ cert: p.certPem, key: p.keyPem, minVersion: 'TLSv1.2' }));
      } else log.warn('no Kubernetes API (not in a pod, no --kubeconfig): admission only; the issuer and policy endpoints are off');
      const bound = await server.listen(port, flags.host).catch((err: unknown) => {
        const e = err as NodeJS.ErrnoException;
        throw new UserError(`cannot listen on ${flags.host ?? '*'}:${port}: ${e.code ?? e.message}`);
      });
      log.info({ port: bound, config: flags.config ?? '(built-in defaults)', image: config.injection.image }, 'webhook listening');
      const stop = (signal: string): void => {
        log.info({ signal }, 'shutting down');
        cp?.stop();
        server.close().then(
          () => process.exit(0),
          () => process.exit(1),
        );
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
    });
}
