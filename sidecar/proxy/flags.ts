import { isIP } from 'node:net';
import { ENV_POD_NAME, ENV_POD_NAMESPACE, ENV_SERVICE_ACCOUNT, ENV_WORKLOAD, TOKEN_DIR, TOKEN_FILE } from '../../shared/constants.js';
import { UserError } from '../../shared/errors.js';
import { parseDuration } from '../../shared/policy/validate.js';
import type { PodIdentity } from '../pipeline/types.js';
import { telemetryConfig } from '../telemetry/config.js';
import type { TelemetryConfig } from '../telemetry/config.js';

// `aigress proxy` flags → a checked configuration. Pure: every bad value becomes a UserError naming the flag.

export interface RawProxyFlags {
  capturePort?: string;
  adminPort?: string;
  listenAddress?: string;
  bundleDir?: string;
  policy?: string;
  caDir?: string;
  extraCaFile?: string;
  credentialsDir?: string;
  controlPlane?: string;
  tokenFile?: string;
  maxBodyBytes?: string;
  drainTimeout?: string;
  upstreamTimeout?: string;
  clientHeaderTimeout?: string;
  clientBodyTimeout?: string;
  logLevel?: string;
  redisUrl?: string;
  otlpEndpoint?: string;
  auditLog?: string;
  /** A switch (commander gives true); `'true'` when read from an argument list. */
  captureContent?: boolean | string;
}

export type SourceMode =
  | { kind: 'standalone'; policyFile: string; caDir: string; credentialsDir?: string }
  | { kind: 'cluster'; controlPlane: URL; tokenFile: string };

export interface ProxyConfig {
  capturePort: number;
  adminPort: number;
  /** Undefined: loopback on both families (the default). */
  listenAddresses?: string[];
  bundleDir: string;
  /** Extra trust roots (PEM) merged into the app bundle. */
  extraCaFile?: string;
  mode: SourceMode;
  maxBodyBytes: number;
  drainTimeoutMs: number;
  upstreamTimeoutMs: number;
  clientHeaderTimeoutMs: number;
  clientBodyTimeoutMs: number;
  logLevel: string;
  /** Shared budgets' store. */
  redisUrl?: string;
  /** OTLP export, audit log, content capture (flags and the OTEL_* environment). */
  telemetry: TelemetryConfig;
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export const DEFAULT_TOKEN_FILE = `${TOKEN_DIR}/${TOKEN_FILE}`;

function port(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!/^\d{1,5}$/.test(value) || Number(value) > 65_535) {
    throw new UserError(`${flag}: expected a port number 0-65535, got '${value}'`, 2);
  }
  return Number(value);
}

function duration(flag: string, value: string | undefined, fallbackMs: number): number {
  if (value === undefined) return fallbackMs;
  const ms = parseDuration(value);
  if (ms === undefined) throw new UserError(`${flag}: expected a duration like 25s, 500ms or 5m, got '${value}'`, 2);
  return ms;
}

function positiveInt(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value) || Number(value) < 1 || !Number.isSafeInteger(Number(value))) {
    throw new UserError(`${flag}: expected a positive whole number of bytes, got '${value}'`, 2);
  }
  return Number(value);
}

/** redis://[user:pass@]host:port[/db] or rediss:// (TLS). */
function redisUrl(value: string): string {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw new UserError(`--redis-url: not a URL: '${value}' (expected redis://host:6379 or rediss://host:6380)`, 2);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new UserError(`--redis-url: expected redis:// or rediss://, got '${u.protocol}'`, 2);
  if (!u.hostname) throw new UserError(`--redis-url: no host in '${value}'`, 2);
  return value;
}

function sourceMode(f: RawProxyFlags): SourceMode {
  const standalone = f.policy !== undefined || f.caDir !== undefined;
  if (standalone && f.controlPlane !== undefined) {
    throw new UserError('--control-plane cannot be combined with --policy/--ca-dir: run either standalone or in cluster mode', 2);
  }
  if (standalone) {
    if (f.policy === undefined) throw new UserError('--policy FILE is required with --ca-dir (standalone mode needs both)', 2);
    if (f.caDir === undefined) throw new UserError('--ca-dir DIR is required with --policy (standalone mode needs both)', 2);
    if (f.credentialsDir === '') throw new UserError('--credentials-dir: must not be empty', 2);
    return { kind: 'standalone', policyFile: f.policy, caDir: f.caDir, ...(f.credentialsDir !== undefined && { credentialsDir: f.credentialsDir }) };
  }
  if (f.controlPlane !== undefined) {
    if (f.credentialsDir !== undefined) {
      throw new UserError('--credentials-dir is for standalone mode (with --policy); in cluster mode the control plane serves credentials', 2);
    }
    let url: URL;
    try {
      url = new URL(f.controlPlane);
    } catch {
      throw new UserError(`--control-plane: not a URL: '${f.controlPlane}'`, 2);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw new UserError(`--control-plane: expected an https:// URL, got '${f.controlPlane}'`, 2);
    }
    return { kind: 'cluster', controlPlane: url, tokenFile: f.tokenFile ?? DEFAULT_TOKEN_FILE };
  }
  throw new UserError('aigress proxy needs --policy FILE and --ca-dir DIR (standalone) or --control-plane URL (cluster)', 2);
}

export function parseProxyFlags(
  f: RawProxyFlags,
  defaults: {
    capturePort: number;
    adminPort: number;
    bundleDir: string;
    maxBodyBytes: number;
    drainTimeoutMs: number;
    upstreamTimeoutMs: number;
    clientHeaderTimeoutMs: number;
    clientBodyTimeoutMs: number;
  },
  env: Readonly<Record<string, string | undefined>> = {},
): ProxyConfig {
  const logLevel = f.logLevel ?? 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw new UserError(`--log-level: expected one of ${LOG_LEVELS.join(', ')}, got '${logLevel}'`, 2);
  }
  if (f.listenAddress !== undefined && isIP(f.listenAddress) === 0) {
    throw new UserError(`--listen-address: expected an IPv4 or IPv6 address, got '${f.listenAddress}'`, 2);
  }
  if (f.bundleDir === '') throw new UserError('--bundle-dir: must not be empty', 2);
  const cfg: ProxyConfig = {
    capturePort: port('--capture-port', f.capturePort, defaults.capturePort),
    adminPort: port('--admin-port', f.adminPort, defaults.adminPort),
    bundleDir: f.bundleDir ?? defaults.bundleDir,
    mode: sourceMode(f),
    maxBodyBytes: positiveInt('--max-body-bytes', f.maxBodyBytes, defaults.maxBodyBytes),
    drainTimeoutMs: duration('--drain-timeout', f.drainTimeout, defaults.drainTimeoutMs),
    upstreamTimeoutMs: duration('--upstream-timeout', f.upstreamTimeout, defaults.upstreamTimeoutMs),
    clientHeaderTimeoutMs: duration('--client-header-timeout', f.clientHeaderTimeout, defaults.clientHeaderTimeoutMs),
    clientBodyTimeoutMs: duration('--client-body-timeout', f.clientBodyTimeout, defaults.clientBodyTimeoutMs),
    logLevel,
    telemetry: telemetryConfig(env, {
      ...(f.otlpEndpoint !== undefined && { otlpEndpoint: f.otlpEndpoint }),
      ...(f.auditLog !== undefined && { auditLog: f.auditLog }),
      ...(f.captureContent !== undefined && { captureContent: f.captureContent === true || f.captureContent === 'true' }),
    }),
  };
  if (cfg.upstreamTimeoutMs === 0) throw new UserError('--upstream-timeout: must be more than 0', 2);
  if (cfg.clientHeaderTimeoutMs === 0) throw new UserError('--client-header-timeout: must be more than 0', 2);
  if (cfg.clientBodyTimeoutMs === 0) throw new UserError('--client-body-timeout: must be more than 0', 2);
  if (f.listenAddress !== undefined) cfg.listenAddresses = [f.listenAddress];
  if (f.extraCaFile !== undefined) {
    if (f.extraCaFile === '') throw new UserError('--extra-ca-file: must not be empty', 2);
    cfg.extraCaFile = f.extraCaFile;
  }
  if (f.redisUrl !== undefined) cfg.redisUrl = redisUrl(f.redisUrl);
  return cfg;
}

/** Who the proxy serves, from the downward-API env the injected spec sets; absent fields stay absent. */
export function identityFromEnv(env: NodeJS.ProcessEnv): PodIdentity {
  const id: PodIdentity = {};
  if (env[ENV_POD_NAMESPACE]) id.namespace = env[ENV_POD_NAMESPACE];
  if (env[ENV_POD_NAME]) id.pod = env[ENV_POD_NAME];
  if (env[ENV_SERVICE_ACCOUNT]) id.serviceAccount = env[ENV_SERVICE_ACCOUNT];
  if (env[ENV_WORKLOAD]) id.workload = env[ENV_WORKLOAD];
  return id;
}
