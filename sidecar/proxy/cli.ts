import type { Command } from 'commander';
import { PROXY_DEFAULTS as D } from './defaults.js';
import { DEFAULT_TOKEN_FILE, LOG_LEVELS, parseProxyFlags, type RawProxyFlags } from './flags.js';

// `aigress proxy`: flags and help only. The proxy itself is imported when the command runs, so other
// subcommands and --help do not load it.

export function registerProxy(program: Command): void {
  program
    .command('proxy')
    .description(
      'Run the egress proxy sidecar: route captured connections by SNI/Host, mediate AI provider traffic with ' +
        'the policy pipeline, pass other traffic through untouched (or deny it), and serve health, readiness and metrics.',
    )
    .option('--capture-port <port>', `port the init container's iptables rules redirect outbound traffic to`, String(D.capturePort))
    .option('--admin-port <port>', 'port for /healthz, /readyz, /metrics and POST /shutdown (all interfaces)', String(D.adminPort))
    .option('--listen-address <addr>', 'address the capture port binds (default: 127.0.0.1 and ::1, where REDIRECT delivers)')
    .option('--bundle-dir <dir>', 'directory to write bundle.pem and truststore.p12 (public roots + aigress CA) into', D.bundleDir)
    .option('--policy <file>', 'standalone mode: EgressPolicy YAML file (re-read when it changes)')
    .option('--ca-dir <dir>', 'standalone mode: directory with tls.crt and tls.key (or ca.crt and ca.key) of the CA that signs leaf certificates')
    .option('--extra-ca-file <file>', 'PEM file of extra trust roots (e.g. a corporate CA) merged into bundle.pem and truststore.p12; re-read when it changes')
    .option('--credentials-dir <dir>', 'standalone mode: managed credentials; secretRef {name, key} is the file DIR/name/key (re-read when it changes)')
    .option('--control-plane <url>', 'cluster mode: control plane URL for certificates and policy')
    .option('--token-file <file>', `cluster mode: ServiceAccount token presented to the control plane (default ${DEFAULT_TOKEN_FILE})`)
    .option('--max-body-bytes <n>', 'largest request body buffered for the pipeline; larger ones get 413', String(D.maxBodyBytes))
    .option('--drain-timeout <duration>', 'on SIGTERM or POST /shutdown, how long in-flight requests and streams may take', `${D.drainTimeoutMs / 1000}s`)
    .option('--upstream-timeout <duration>', 'how long to wait for a provider\'s response headers, and between body chunks', `${D.upstreamTimeoutMs / 1000}s`)
    .option('--client-header-timeout <duration>', "slow clients: how long an app's TLS handshake and each request head may take to arrive (then 408 and closed)", `${D.clientHeaderTimeoutMs / 1000}s`)
    .option('--client-body-timeout <duration>', 'slow clients: how long a request body may pause between bytes (then 408 and closed)', `${D.clientBodyTimeoutMs / 1000}s`)
    .option('--redis-url <url>', 'shared budgets: redis:// or rediss:// (TLS) URL of the Redis the proxies of a scope share; password from AIGRESS_REDIS_PASSWORD')
    .option('--log-level <level>', `one of ${LOG_LEVELS.join(', ')}`, 'info')
    .option('--otlp-endpoint <url>', 'export spans and metrics over OTLP/HTTP (protobuf by default) to this base URL (as OTEL_EXPORTER_OTLP_ENDPOINT; docs/metrics.md)')
    .option('--audit-log <dest>', 'write one audit record per AI call (docs/audit.md) to stdout, stderr or this file')
    .option('--capture-content', 'put prompt and completion text (after redaction) on spans; off by default')
    .addHelpText(
      'after',
      '\nEnvironment: AIGRESS_POD_NAME, AIGRESS_POD_NAMESPACE, AIGRESS_SERVICE_ACCOUNT, AIGRESS_WORKLOAD name the pod in log lines and metrics.\n' +
        'AIGRESS_REDIS_PASSWORD: password for --redis-url (kept off the command line).\n' +
        'OTEL_EXPORTER_OTLP_ENDPOINT (and the other OTEL_EXPORTER_OTLP_* variables) enable OTLP export.\n' +
        'Standalone example: aigress proxy --policy policy.yaml --ca-dir ./ca --bundle-dir ./bundle',
    )
    .action(async (flags: RawProxyFlags) => {
      const config = parseProxyFlags(flags, D, process.env);
      const { runProxy } = await import('./run.js');
      await runProxy(config);
    });
}
