import { runCli, type Register } from './run-cli.js';

// The sidecar image's entry point (esbuild bundles it with its imports: docs/image.md): only the two commands
// an injected pod runs, so the control plane's code (the Kubernetes client, the webhook) is not in the bundle.
const SIDECAR_COMMANDS: Record<string, () => Promise<Register>> = {
  proxy: async () => (await import('../sidecar/proxy/cli.js')).registerProxy,
  init: async () => (await import('../sidecar/init/cli.js')).registerInit,
};

runCli(SIDECAR_COMMANDS);
