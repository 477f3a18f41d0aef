import { Registry } from 'prom-client';
import { UserError, errorMessage } from '../../shared/errors.js';
import { pino } from 'pino';
import { createLogger, type Logger } from '../../shared/log.js';
import { identityFromEnv, type ProxyConfig } from './flags.js';
import { ListenError, startProxy } from './proxy.js';
import type { CredentialOption } from './services.js';
import { FilePolicySource, LocalCaCertificateSource } from './sources/standalone.js';

/** Set by the webhook on injected proxies (sources/cluster.ts checks it before anything starts). */
const CONTROL_PLANE_CA_ENV = 'AIGRESS_CONTROL_PLANE_CA';

// The long-running `aigress proxy` process: sources for the mode, the proxy, and signals. SIGTERM (or POST
// /shutdown) drains and exits 0; a startup failure is one line on stderr and a non-zero exit.

/** Log lines are written in batches of this size (or each second): one write per request line is a syscall. */
const LOG_BATCH_BYTES = 4096;
const LOG_FLUSH_MS = 1_000;

export async function runProxy(config: ProxyConfig): Promise<void> {
  const sink = pino.destination({ dest: 1, minLength: LOG_BATCH_BYTES, sync: false });
  const flush = setInterval(() => sink.flush(), LOG_FLUSH_MS).unref();
  const flushNow = (): void => {
    clearInterval(flush);
    try {
      sink.flushSync();
    } catch {
      // nothing buffered, or a write is in flight; exit does not wait for logs
    }
  };
  try {
    await start(config, createLogger('proxy', { level: config.logLevel }, sink), flushNow, sink);
  } catch (err) {
    flushNow();
    throw err;
  }
}

/** Standalone: --credentials-dir when given; cluster mode: the control plane (asked only when a policy names credentials). */
function credentialOption(config: ProxyConfig): CredentialOption | undefined {
  const m = config.mode;
  if (m.kind === 'standalone') return m.credentialsDir === undefined ? undefined : { kind: 'dir', dir: m.credentialsDir };
  return { kind: 'control-plane', controlPlane: m.controlPlane, tokenFile: m.tokenFile, caPem: process.env[CONTROL_PLANE_CA_ENV] ?? '' };
}

async function start(config: ProxyConfig, log: Logger, flushNow: () => void, stdout: { write(line: string): unknown }): Promise<void> {
  // One registry for the proxy and its sources, so cluster mode's certificate and policy metrics are served too.
  const registry = new Registry();
  // Cluster mode's code (its HTTP client, CSR signing) loads only in cluster mode: standalone starts without it.
  const sources =
    config.mode.kind === 'standalone'
      ? {
          certificates: new LocalCaCertificateSource(config.mode.caDir),
          policy: new FilePolicySource(config.mode.policyFile, log),
        }
      : (await import('./sources/cluster-factory.js')).createClusterSources({ controlPlane: config.mode.controlPlane, tokenFile: config.mode.tokenFile, log, bundleDir: config.bundleDir, registry });

  let handle;
  try {
    handle = await startProxy({
      ...sources,
      registry,
      credentials: credentialOption(config),
      capturePort: config.capturePort,
      adminPort: config.adminPort,
      listenAddresses: config.listenAddresses,
      bundleDir: config.bundleDir,
      ...(config.extraCaFile === undefined ? {} : { extraCaFile: config.extraCaFile }),
      maxBodyBytes: config.maxBodyBytes,
      drainTimeoutMs: config.drainTimeoutMs,
      upstreamTimeoutMs: config.upstreamTimeoutMs,
      clientHeaderTimeoutMs: config.clientHeaderTimeoutMs,
      clientBodyTimeoutMs: config.clientBodyTimeoutMs,
      logger: log,
      identity: identityFromEnv(process.env),
      ...(config.redisUrl !== undefined && { redisUrl: config.redisUrl }),
      ...(process.env.AIGRESS_REDIS_PASSWORD && { redisPassword: process.env.AIGRESS_REDIS_PASSWORD }),
      telemetry: config.telemetry,
      stdout,
    });
  } catch (err) {
    sources.certificates.close();
    sources.policy.close();
    if (err instanceof ListenError) {
      const flag = err.which === 'admin' ? '--admin-port' : '--capture-port';
      throw new UserError(`${flag} ${err.port}: cannot listen on ${err.address}: ${err.code}`);
    }
    throw err;
  }
  try {
    await handle.ready;
  } catch (err) {
    await handle.close();
    if (err instanceof UserError) throw err;
    throw new UserError(`proxy could not start: ${errorMessage(err)}`);
  }

  const onSignal = (signal: string): void => {
    log.info({ signal, drainTimeoutMs: config.drainTimeoutMs }, 'draining');
    void handle.drain();
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  void handle.stopped.then(() => {
    flushNow();
    process.exit(0);
  });
}
