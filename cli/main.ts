import { runCli, type Register } from './run-cli.js';

// The full binary. Each subcommand's module is imported only when that subcommand runs (or for the top-level
// help): the proxy is started in every pod, and loading the control plane's code there would cost it ~1 s and ~60 MiB.
export const COMMANDS: Record<string, () => Promise<Register>> = {
  webhook: async () => (await import('../webhook/cli.js')).registerWebhook,
  proxy: async () => (await import('../sidecar/proxy/cli.js')).registerProxy,
  init: async () => (await import('../sidecar/init/cli.js')).registerInit,
  inject: async () => (await import('./inject.js')).registerInject,
  uninject: async () => (await import('./uninject.js')).registerUninject,
  policy: async () => (await import('./policy.js')).registerPolicy,
  check: async () => (await import('./check.js')).registerCheck,
  version: async () => (await import('./version.js')).registerVersion,
  completion: async () => (await import('./completion.js')).registerCompletion,
  demo: async () => (await import('./demo.js')).registerDemo,
};

runCli(COMMANDS);
