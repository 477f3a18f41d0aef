import { parseArgs } from 'node:util';
import { PROXY_DEFAULTS } from '../../sidecar/proxy/defaults.js';
import { parseProxyFlags, type ProxyConfig, type RawProxyFlags } from '../../sidecar/proxy/flags.js';

// The injected aigress-proxy container's args, read by the proxy's own flag parser: the demo starts the proxy
// with what the spec says, changing only what cannot apply on a laptop (fixed ports, the pod's volume path).

const FLAGS: Record<string, keyof RawProxyFlags> = {
  'capture-port': 'capturePort',
  'admin-port': 'adminPort',
  'listen-address': 'listenAddress',
  'bundle-dir': 'bundleDir',
  policy: 'policy',
  'ca-dir': 'caDir',
  'credentials-dir': 'credentialsDir',
  'control-plane': 'controlPlane',
  'token-file': 'tokenFile',
  'max-body-bytes': 'maxBodyBytes',
  'drain-timeout': 'drainTimeout',
  'upstream-timeout': 'upstreamTimeout',
  'log-level': 'logLevel',
};

/** `['proxy', '--capture-port', '14001', …]` → the proxy's checked configuration; throws on what it would reject. */
export function proxyConfigFromArgs(args: readonly string[]): ProxyConfig {
  if (args[0] !== 'proxy') throw new Error(`the proxy container's args do not start with the proxy subcommand: ${args.join(' ')}`);
  const { values } = parseArgs({
    args: args.slice(1),
    options: Object.fromEntries(Object.keys(FLAGS).map((f) => [f, { type: 'string' as const }])),
    strict: true,
    allowPositionals: false,
  });
  const raw: RawProxyFlags = {};
  for (const [flag, key] of Object.entries(FLAGS)) {
    const v = values[flag];
    if (typeof v === 'string') raw[key] = v;
  }
  return parseProxyFlags(raw, PROXY_DEFAULTS);
}
