import { describe, expect, it } from 'vitest';
import { Command } from 'commander';
import { UserError } from '../../../shared/errors.js';
import { adminReply, type AdminDeps } from '../../../sidecar/proxy/admin.js';
import { registerProxy } from '../../../sidecar/proxy/cli.js';
import { PROXY_DEFAULTS } from '../../../sidecar/proxy/defaults.js';
import { identityFromEnv, parseProxyFlags } from '../../../sidecar/proxy/flags.js';
import { Registry } from 'prom-client';

const standalone = { policy: 'p.yaml', caDir: 'ca' };

function fails(flags: Record<string, string>, message: string | RegExp): void {
  let err: unknown;
  try {
    parseProxyFlags(flags, PROXY_DEFAULTS);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(UserError);
  expect((err as UserError).message).toMatch(message);
  expect((err as UserError).exitCode).toBe(2);
}

describe('parseProxyFlags', () => {
  it('applies the contract defaults', () => {
    expect(parseProxyFlags(standalone, PROXY_DEFAULTS)).toEqual({
      capturePort: 14001,
      adminPort: 14020,
      bundleDir: '/var/run/aigress/ca',
      mode: { kind: 'standalone', policyFile: 'p.yaml', caDir: 'ca' },
      maxBodyBytes: 10_485_760,
      drainTimeoutMs: 25_000,
      upstreamTimeoutMs: 300_000,
      clientHeaderTimeoutMs: 30_000,
      clientBodyTimeoutMs: 60_000,
      logLevel: 'info',
      // No OTLP endpoint, no audit log: telemetry off.
      telemetry: { captureContent: false },
    });
  });

  it('parses every flag', () => {
    const c = parseProxyFlags(
      { ...standalone, capturePort: '15001', adminPort: '0', listenAddress: '::1', bundleDir: '/b', maxBodyBytes: '1024', drainTimeout: '500ms', upstreamTimeout: '2m', clientHeaderTimeout: '10s', clientBodyTimeout: '45s', logLevel: 'debug' },
      PROXY_DEFAULTS,
    );
    expect(c).toMatchObject({ capturePort: 15001, adminPort: 0, listenAddresses: ['::1'], bundleDir: '/b', maxBodyBytes: 1024, drainTimeoutMs: 500, upstreamTimeoutMs: 120_000, clientHeaderTimeoutMs: 10_000, clientBodyTimeoutMs: 45_000, logLevel: 'debug' });
  });

  it('names the flag and the value it refuses', () => {
    fails({ ...standalone, capturePort: '70000' }, "--capture-port: expected a port number 0-65535, got '70000'");
    fails({ ...standalone, adminPort: 'http' }, /--admin-port/);
    fails({ ...standalone, drainTimeout: '25' }, "--drain-timeout: expected a duration like 25s, 500ms or 5m, got '25'");
    fails({ ...standalone, upstreamTimeout: '0s' }, /--upstream-timeout: must be more than 0/);
    fails({ ...standalone, clientHeaderTimeout: '0s' }, /--client-header-timeout: must be more than 0/);
    fails({ ...standalone, clientBodyTimeout: 'long' }, "--client-body-timeout: expected a duration like 25s, 500ms or 5m, got 'long'");
    fails({ ...standalone, maxBodyBytes: '10MiB' }, /--max-body-bytes: expected a positive whole number of bytes, got '10MiB'/);
    fails({ ...standalone, logLevel: 'loud' }, /--log-level: expected one of fatal, error/);
    fails({ ...standalone, listenAddress: 'localhost' }, /--listen-address: expected an IPv4 or IPv6 address/);
  });

  it('chooses standalone or cluster mode, and refuses half or mixed setups', () => {
    expect(parseProxyFlags({ controlPlane: 'https://aigress.aigress-system.svc:8443' }, PROXY_DEFAULTS).mode).toEqual({
      kind: 'cluster',
      controlPlane: new URL('https://aigress.aigress-system.svc:8443'),
      tokenFile: '/var/run/secrets/aigress.io/token',
    });
    fails({}, /needs --policy FILE and --ca-dir DIR .* or --control-plane URL/);
    fails({ policy: 'p.yaml' }, /--ca-dir DIR is required/);
    fails({ caDir: 'ca' }, /--policy FILE is required/);
    fails({ ...standalone, controlPlane: 'https://x' }, /cannot be combined/);
    fails({ controlPlane: 'not a url' }, /--control-plane: not a URL/);
    fails({ controlPlane: 'ftp://x' }, /--control-plane: expected an https:\/\/ URL/);
  });

  it('reads the pod identity from the downward-API env, leaving absent fields out', () => {
    expect(identityFromEnv({ AIGRESS_POD_NAME: 'p', AIGRESS_POD_NAMESPACE: 'ns', AIGRESS_SERVICE_ACCOUNT: 'sa' })).toEqual({ pod: 'p', namespace: 'ns', serviceAccount: 'sa' });
    expect(identityFromEnv({ AIGRESS_POD_NAME: 'p' })).toEqual({ pod: 'p' });
    expect(identityFromEnv({ AIGRESS_POD_NAME: 'p', AIGRESS_WORKLOAD: 'deployment/checkout' })).toEqual({ pod: 'p', workload: 'deployment/checkout' });
  });
});

describe('aigress proxy --help', () => {
  it('documents every flag of the contract', () => {
    const program = new Command('aigress');
    registerProxy(program);
    const help = program.commands.find((c) => c.name() === 'proxy')!.helpInformation();
    for (const flag of ['--capture-port', '--admin-port', '--listen-address', '--bundle-dir', '--policy', '--ca-dir', '--control-plane', '--token-file', '--max-body-bytes', '--drain-timeout', '--upstream-timeout', '--log-level']) {
      expect(help).toContain(flag);
    }
  });

  it('refuses cluster mode without the control plane CA with one clear error', async () => {
    const program = new Command('aigress').exitOverride();
    registerProxy(program);
    const saved = process.env.AIGRESS_CONTROL_PLANE_CA;
    delete process.env.AIGRESS_CONTROL_PLANE_CA;
    try {
      await expect(program.parseAsync(['proxy', '--control-plane', 'https://cp:8443'], { from: 'user' })).rejects.toThrow(
        "cluster mode needs the control plane's CA certificate in $AIGRESS_CONTROL_PLANE_CA",
      );
    } finally {
      if (saved !== undefined) process.env.AIGRESS_CONTROL_PLANE_CA = saved;
    }
  });
});

describe('admin routes', () => {
  const deps = (ready: boolean, draining = false): AdminDeps => ({ ready: () => ready, draining: () => draining, registry: new Registry(), shutdown: () => undefined });
  it('answers health, readiness, shutdown and unknown paths', async () => {
    expect((await adminReply('GET', '/healthz', '10.0.0.9', deps(false))).status).toBe(200);
    expect((await adminReply('GET', '/readyz', '10.0.0.9', deps(false))).status).toBe(503);
    expect((await adminReply('GET', '/readyz', '10.0.0.9', deps(true))).status).toBe(200);
    expect((await adminReply('GET', '/readyz', '10.0.0.9', deps(true, true))).body).toBe('draining\n');
    expect((await adminReply('POST', '/shutdown', '127.0.0.1', deps(true))).status).toBe(202);
    expect((await adminReply('POST', '/shutdown', '::1', deps(true))).status).toBe(202);
    expect((await adminReply('POST', '/shutdown', '10.0.0.9', deps(true))).status).toBe(403); // from the pod network
    expect((await adminReply('GET', '/nope', '127.0.0.1', deps(true))).status).toBe(404);
  });
});
