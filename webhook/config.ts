import { readFile } from 'node:fs/promises';
import { parseAllDocuments } from 'yaml';
import { isIP } from 'node:net';
import {
  ADMIN_PORT,
  CA_BUNDLE_DIR,
  CAPTURE_PORT,
  DEFAULT_INCLUDE_PORTS,
  ISTIO_PROXY_UID,
  LINKERD_PROXY_UID,
  PROXY_GID,
  PROXY_UID,
  TOKEN_DIR,
  VERSION,
  WEBHOOK_PORT,
} from '../shared/constants.js';
import { UserError } from '../shared/errors.js';
import { checkCidrItem, mergePorts, parsePortItem, type PortRange } from '../shared/capture.js';
import { parseQuantity } from './inject/quantity.js';
import { isObj, type Obj } from '../shared/json.js';

// The control plane's configuration: how pods are injected (shared by the webhook and `aigress inject`) and how
// the webhook server listens. Every field has a built-in default, so no file at all is a valid configuration; a
// file overrides field by field, and every bad field is reported with its path (`injection.proxy.uid: ...`).

export type NativeSidecarMode = 'auto' | 'always' | 'never';
export type PullPolicy = 'Always' | 'IfNotPresent' | 'Never';
export type EscapingContainers = 'deny' | 'warn';

export interface ResourceList {
  cpu?: string;
  memory?: string;
}

export interface ResourceRequirements {
  requests: ResourceList;
  limits: ResourceList;
}

export interface InjectionConfig {
  image: string;
  imagePullPolicy: PullPolicy;
  /** `auto`: native sidecar unless `kubernetesVersion` says the cluster is older than 1.29. */
  nativeSidecar: NativeSidecarMode;
  /** The cluster's version when known (e.g. from Helm's .Capabilities); empty when unknown. */
  kubernetesVersion: string;
  controlPlane: {
    /** Passed to the proxy as --control-plane; empty omits the flag (standalone proxies). */
    address: string;
    /** The control plane's own namespace; its pods are never injected. */
    namespace: string;
    /**
     * PEM of the control plane's CA (public certificate only), set at run time by the webhook once it has loaded
     * its CA: injected proxies verify the control plane with it. Never read from the config file.
     */
    caPem?: string;
  };
  proxy: {
    uid: number;
    gid: number;
    capturePort: number;
    adminPort: number;
    resources: ResourceRequirements;
    /** Appended verbatim to the proxy's arguments (dev and tests: `--policy FILE --ca-dir DIR`). */
    extraArgs: string[];
    /**
     * A ConfigMap (in each injected pod's namespace) with extra trust roots, e.g. a corporate CA: mounted into
     * the proxy, which merges it into the apps' bundle (`--extra-ca-file`). Empty name: none.
     */
    extraCaConfigMap: { name: string; key: string };
    /**
     * Put Prometheus scrape annotations (prometheus.io/scrape, port, path) on injected pods for the proxy's admin
     * port, for Prometheus set up with the usual annotation-based pod discovery. Annotations the pod already has
     * are never changed.
     */
    prometheusScrape: boolean;
    /** OTLP export and the audit log of injected proxies (docs/metrics.md, docs/audit.md); empty = off. */
    telemetry: {
      /** OTEL_EXPORTER_OTLP_ENDPOINT of the proxy: an http(s) base URL of an OTLP/HTTP receiver. */
      otlpEndpoint: string;
      /** OTEL_EXPORTER_OTLP_TRACES_ENDPOINT / _METRICS_ENDPOINT: full URL of one signal; empty = from otlpEndpoint. */
      otlpTracesEndpoint: string;
      otlpMetricsEndpoint: string;
      /** OTEL_EXPORTER_OTLP_PROTOCOL ('' = the proxy's default, http/protobuf). */
      otlpProtocol: '' | 'http/protobuf' | 'http/json';
      /** OTEL_EXPORTER_OTLP_COMPRESSION ('' = none). */
      otlpCompression: '' | 'gzip' | 'none';
      /** OTEL_EXPORTER_OTLP_TIMEOUT in ms; 0 = the proxy's default (10000). */
      otlpTimeoutMs: number;
      /** A Secret in the pod's namespace whose key holds OTEL_EXPORTER_OTLP_HEADERS (keys stay out of the pod spec). */
      otlpHeadersSecret: { name: string; key: string };
      /** OTEL_METRIC_EXPORT_INTERVAL in ms; 0 = the proxy's default (60000). */
      metricExportIntervalMs: number;
      /** OTEL_SERVICE_NAME; empty = aigress-proxy. */
      serviceName: string;
      /** OTEL_RESOURCE_ATTRIBUTES, added to the pod identity on every span and metric. */
      resourceAttributes: Readonly<Record<string, string>>;
      /** AIGRESS_AUDIT_LOG of the proxy: stdout, stderr or a file path. */
      auditLog: string;
      /** Prompt and completion text on spans (OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT). */
      captureContent: boolean;
    };
  };
  init: {
    resources: ResourceRequirements;
  };
  /** Shared budgets (docs/budgets.md): the Redis the injected proxies share; empty URL: none. */
  budgets: {
    /** Passed to the proxy as --redis-url (redis:// or rediss://). */
    redisUrl: string;
    /** A Secret in the pod's namespace holding the Redis password (AIGRESS_REDIS_PASSWORD); empty name: none. */
    passwordSecret: { name: string; key: string };
  };
  capture: {
    includeOutboundPorts: PortRange[];
    excludeOutboundPorts: PortRange[];
    excludeOutboundCidrs: string[];
    ipv6: 'auto' | 'true' | 'false';
    iptablesMode: 'auto' | 'legacy' | 'nft';
    /**
     * Leave the Kubernetes API Service address out of capture (true by default): controllers, operators and
     * client-go reach it by IP with TLS and no SNI, which the proxy has no reason to see.
     */
    excludeKubernetesApi: boolean;
    /** The API Service's ClusterIP; empty: the webhook's own KUBERNETES_SERVICE_HOST (see withRuntimeDefaults). */
    kubernetesApiAddress: string;
    /** UIDs of mesh proxies exempted from capture when the pod is in that mesh (docs/meshes.md). */
    meshProxyUids: { istio: number; linkerd: number };
    /**
     * A pod with a container that could bypass capture (runs as the proxy's UID or GID, adds NET_ADMIN or NET_RAW,
     * or is privileged): `deny` (default) refuses it at admission, `warn` injects it with an admission warning.
     */
    escapingContainers: EscapingContainers;
  };
}

export interface ServerConfig {
  port: number;
  /** PEM files; both empty means an ephemeral self-signed certificate (development only). */
  tlsCert: string;
  tlsKey: string;
  /** How often the certificate files are checked for changes on disk. */
  certReloadSeconds: number;
}

export interface WebhookConfig {
  injection: InjectionConfig;
  server: ServerConfig;
}

export function defaultConfig(): WebhookConfig {
  return {
    injection: {
      image: `ghcr.io/aigress/aigress:${VERSION}`,
      imagePullPolicy: 'IfNotPresent',
      nativeSidecar: 'auto',
      kubernetesVersion: '',
      controlPlane: { address: 'https://aigress.aigress-system.svc', namespace: 'aigress-system' },
      proxy: {
        uid: PROXY_UID,
        gid: PROXY_GID,
        capturePort: CAPTURE_PORT,
        adminPort: ADMIN_PORT,
        resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '512Mi' } },
        extraArgs: [],
        extraCaConfigMap: { name: '', key: 'ca.crt' },
        prometheusScrape: false,
        telemetry: {
          otlpEndpoint: '',
          otlpTracesEndpoint: '',
          otlpMetricsEndpoint: '',
          otlpProtocol: '',
          otlpCompression: '',
          otlpTimeoutMs: 0,
          otlpHeadersSecret: { name: '', key: 'headers' },
          metricExportIntervalMs: 0,
          serviceName: '',
          resourceAttributes: {},
          auditLog: '',
          captureContent: false,
        },
      },
      init: {
        resources: { requests: { cpu: '10m', memory: '32Mi' }, limits: { memory: '128Mi' } },
      },
      budgets: { redisUrl: '', passwordSecret: { name: '', key: 'password' } },
      capture: {
        includeOutboundPorts: DEFAULT_INCLUDE_PORTS.map((p) => ({ from: p, to: p })),
        excludeOutboundPorts: [],
        excludeOutboundCidrs: [],
        ipv6: 'auto',
        iptablesMode: 'auto',
        excludeKubernetesApi: true,
        kubernetesApiAddress: '',
        meshProxyUids: { istio: ISTIO_PROXY_UID, linkerd: LINKERD_PROXY_UID },
        escapingContainers: 'deny',
      },
    },
    server: { port: WEBHOOK_PORT, tlsCert: '', tlsKey: '', certReloadSeconds: 5 },
  };
}

/** `1.28`, `v1.29.3`, `v1.30.1-eks-2f008fe` → [major, minor]; undefined when it is not a version. */
export function parseKubernetesVersion(text: string): [number, number] | undefined {
  const m = /^v?(\d+)\.(\d+)(?:\.\d+)?(?:[-+].*)?$/.exec(text.trim());
  return m ? [Number(m[1]), Number(m[2])] : undefined;
}

/** Whether the proxy becomes a native sidecar (init container with restartPolicy: Always, Kubernetes ≥ 1.29). */
export function useNativeSidecar(config: InjectionConfig): boolean {
  if (config.nativeSidecar !== 'auto') return config.nativeSidecar === 'always';
  const v = parseKubernetesVersion(config.kubernetesVersion);
  return v === undefined || v[0] > 1 || (v[0] === 1 && v[1] >= 29);
}


interface Issue {
  path: string;
  message: string;
}

/** Directories of the injected proxy's own mounts (CA bundle, token, extra roots): no audit volume over them. */
const PROXY_MOUNT_DIRS = [CA_BUNDLE_DIR, TOKEN_DIR, '/etc/aigress/extra-ca'];

/**
 * injection.proxy.telemetry.auditLog: empty, stdout, stderr, or an absolute file path. A file gets a writable
 * emptyDir mounted at its directory (the proxy's root filesystem is read-only), so the directory must be one a
 * volume can be mounted at: not `/`, no `.`/`..` segments, not one of the proxy's own mounts or inside one.
 */
function auditLogPath(r: Reader, v: unknown): string {
  const path = 'injection.proxy.telemetry.auditLog';
  const a = r.string(v, path, '');
  if (a === '' || a === 'stdout' || a === 'stderr') return a;
  const why = ((): string | undefined => {
    if (!a.startsWith('/')) return 'must be stdout, stderr or an absolute file path';
    if (a.endsWith('/')) return 'must name a file, not a directory';
    // eslint-disable-next-line no-control-regex
    if (/[\u0000-\u001f\u007f:]/.test(a)) return 'must not contain control characters or ":"';
    const segs = a.split('/').slice(1);
    if (segs.some((x) => x === '' || x === '.' || x === '..')) return 'must be a plain absolute path (no empty, "." or ".." segments)';
    if (segs.length < 2) return 'must be in a directory below / (the audit volume is mounted at the file\'s directory)';
    const dir = a.slice(0, a.lastIndexOf('/'));
    const taken = PROXY_MOUNT_DIRS.find((m) => dir === m || dir.startsWith(`${m}/`) || m.startsWith(`${dir}/`));
    if (taken) return `its directory must not be or contain the proxy's own mount ${taken}`;
    return undefined;
  })();
  if (why === undefined) return a;
  r.fail(path, `${why} (got ${JSON.stringify(a)})`);
  return '';
}

class Reader {
  readonly issues: Issue[] = [];
  fail(path: string, message: string): void {
    this.issues.push({ path, message });
  }
  /** A section: absent means defaults; unknown keys are errors (a typo must not silently fall back to a default). */
  section(v: unknown, path: string, allowed: readonly string[]): Obj {
    if (v === undefined || v === null) return {};
    if (!isObj(v)) {
      this.fail(path, 'must be a map');
      return {};
    }
    for (const k of Object.keys(v)) {
      if (!allowed.includes(k)) this.fail(path ? `${path}.${k}` : k, `unknown field (allowed: ${allowed.join(', ')})`);
    }
    return v;
  }
  string(v: unknown, path: string, dflt: string, opts: { nonEmpty?: boolean } = {}): string {
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'string') {
      this.fail(path, `must be a string (got ${JSON.stringify(v)})`);
      return dflt;
    }
    if (opts.nonEmpty && v.trim() === '') this.fail(path, 'must not be empty');
    return v;
  }
  integer(v: unknown, path: string, dflt: number, min: number, max: number): number {
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
      this.fail(path, `must be an integer from ${min} to ${max} (got ${JSON.stringify(v)})`);
      return dflt;
    }
    return v;
  }
  boolean(v: unknown, path: string, dflt: boolean): boolean {
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'boolean') {
      this.fail(path, `must be true or false (got ${JSON.stringify(v)})`);
      return dflt;
    }
    return v;
  }
  oneOf<T extends string>(v: unknown, path: string, allowed: readonly T[], dflt: T): T {
    if (v === undefined || v === null) return dflt;
    // YAML reads `ipv6: true` as a boolean; the flag it becomes is the word.
    const s = typeof v === 'boolean' ? String(v) : v;
    if (typeof s !== 'string' || !allowed.includes(s as T)) {
      this.fail(path, `must be one of ${allowed.join(', ')} (got ${JSON.stringify(v)})`);
      return dflt;
    }
    return s as T;
  }
  list(v: unknown, path: string): unknown[] | undefined {
    if (v === undefined || v === null) return undefined;
    if (!Array.isArray(v)) {
      this.fail(path, 'must be a list');
      return undefined;
    }
    return v;
  }
  stringList(v: unknown, path: string, dflt: string[]): string[] {
    const items = this.list(v, path);
    if (!items) return dflt;
    const out: string[] = [];
    items.forEach((x, i) => {
      if (typeof x !== 'string') this.fail(`${path}[${i}]`, `must be a string (got ${JSON.stringify(x)})`);
      else out.push(x);
    });
    return out;
  }
  ports(v: unknown, path: string, dflt: PortRange[]): PortRange[] {
    const items = this.list(v, path);
    if (!items) return dflt;
    const out: PortRange[] = [];
    items.forEach((x, i) => {
      const p = typeof x === 'number' || typeof x === 'string' ? parsePortItem(String(x).trim()) : 'is not a port';
      if (typeof p === 'string') this.fail(`${path}[${i}]`, `${JSON.stringify(x)} ${p}`);
      else out.push(p);
    });
    return mergePorts(out);
  }
  cidrs(v: unknown, path: string, dflt: string[]): string[] {
    const items = this.stringList(v, path, dflt);
    items.forEach((x, i) => {
      const why = checkCidrItem(x.trim());
      if (why) this.fail(`${path}[${i}]`, `${JSON.stringify(x)} ${why}`);
    });
    return items.map((x) => x.trim());
  }
  resources(v: unknown, path: string, dflt: ResourceRequirements): ResourceRequirements {
    if (v === undefined || v === null) return dflt;
    // Given at all, `resources` replaces the default whole: a partial merge could keep a limit the user meant to drop.
    const r = this.section(v, path, ['requests', 'limits']);
    const list = (x: unknown, p: string): ResourceList => {
      const o = this.section(x, p, ['cpu', 'memory']);
      const out: ResourceList = {};
      for (const k of ['cpu', 'memory'] as const) {
        const q = o[k];
        if (q === undefined || q === null) continue;
        const text = typeof q === 'number' ? String(q) : q;
        if (typeof text !== 'string' || parseQuantity(text) === undefined) {
          this.fail(`${p}.${k}`, `must be a Kubernetes quantity like 100m or 128Mi (got ${JSON.stringify(q)})`);
        } else out[k] = text;
      }
      return out;
    };
    const out = { requests: list(r.requests, `${path}.requests`), limits: list(r.limits, `${path}.limits`) };
    for (const k of ['cpu', 'memory'] as const) {
      const req = out.requests[k];
      const lim = out.limits[k];
      if (req !== undefined && lim !== undefined && parseQuantity(req)! > parseQuantity(lim)!) {
        this.fail(`${path}.requests.${k}`, `${req} is above the limit ${lim}`);
      }
    }
    return out;
  }
}

const TOP = ['injection', 'server'] as const;
const INJECTION = ['image', 'imagePullPolicy', 'nativeSidecar', 'kubernetesVersion', 'controlPlane', 'proxy', 'init', 'budgets', 'capture'] as const;

/** Validates a parsed config document against the defaults; pure. */
export function validateConfig(raw: unknown): { ok: true; config: WebhookConfig } | { ok: false; issues: Issue[] } {
  const d = defaultConfig();
  const r = new Reader();
  if (raw !== undefined && raw !== null && !isObj(raw)) {
    return { ok: false, issues: [{ path: '(document)', message: 'must be a map with the sections injection and server' }] };
  }
  const top = r.section(raw, '', TOP);
  const inj = r.section(top.injection, 'injection', INJECTION);
  const cp = r.section(inj.controlPlane, 'injection.controlPlane', ['address', 'namespace']);
  const proxy = r.section(inj.proxy, 'injection.proxy', ['uid', 'gid', 'capturePort', 'adminPort', 'resources', 'extraArgs', 'extraCaConfigMap', 'telemetry', 'prometheusScrape']);
  const extraCa = r.section(proxy.extraCaConfigMap, 'injection.proxy.extraCaConfigMap', ['name', 'key']);
  const extraCaName = r.string(extraCa.name, 'injection.proxy.extraCaConfigMap.name', '').trim();
  const extraCaKey = r.string(extraCa.key, 'injection.proxy.extraCaConfigMap.key', 'ca.crt', { nonEmpty: true }).trim();
  if (extraCaName !== '' && !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(extraCaName)) {
    r.fail('injection.proxy.extraCaConfigMap.name', `must be a ConfigMap name (got ${JSON.stringify(extraCaName)})`);
  }
  if (!/^[-._a-zA-Z0-9]+$/.test(extraCaKey)) r.fail('injection.proxy.extraCaConfigMap.key', `must be a ConfigMap key (got ${JSON.stringify(extraCaKey)})`);
  const T = 'injection.proxy.telemetry';
  const tel = r.section(proxy.telemetry, T, [
    'otlpEndpoint', 'otlpTracesEndpoint', 'otlpMetricsEndpoint', 'otlpProtocol', 'otlpCompression', 'otlpTimeoutMs', 'otlpHeadersSecret',
    'metricExportIntervalMs', 'serviceName', 'resourceAttributes', 'auditLog', 'captureContent',
  ]);
  const httpUrl = (k: 'otlpEndpoint' | 'otlpTracesEndpoint' | 'otlpMetricsEndpoint'): string => {
    const u = r.string(tel[k], `${T}.${k}`, '');
    if (u !== '' && !/^https?:\/\/[^\s/]+/.test(u)) r.fail(`${T}.${k}`, `must be an http(s) URL or empty (got ${JSON.stringify(u)})`);
    return u;
  };
  const otlpEndpoint = httpUrl('otlpEndpoint');
  const headersSecret = r.section(tel.otlpHeadersSecret, `${T}.otlpHeadersSecret`, ['name', 'key']);
  const resourceAttributes: Record<string, string> = {};
  const ra = tel.resourceAttributes;
  if (ra !== undefined && ra !== null && !isObj(ra)) r.fail(`${T}.resourceAttributes`, 'must be a map');
  for (const [k, v] of Object.entries(isObj(ra) ? ra : {})) {
    if (typeof v !== 'string' || !/^[^\s,=]+$/.test(k)) r.fail(`${T}.resourceAttributes.${k}`, 'must be a string value under a key without spaces, commas or =');
    else resourceAttributes[k] = v;
  }
  const telemetryRest = {
    otlpTracesEndpoint: httpUrl('otlpTracesEndpoint'),
    otlpMetricsEndpoint: httpUrl('otlpMetricsEndpoint'),
    otlpProtocol: r.oneOf(tel.otlpProtocol, `${T}.otlpProtocol`, ['', 'http/protobuf', 'http/json'] as const, ''),
    otlpCompression: r.oneOf(tel.otlpCompression, `${T}.otlpCompression`, ['', 'gzip', 'none'] as const, ''),
    otlpTimeoutMs: r.integer(tel.otlpTimeoutMs, `${T}.otlpTimeoutMs`, 0, 0, 600_000),
    otlpHeadersSecret: { name: r.string(headersSecret.name, `${T}.otlpHeadersSecret.name`, ''), key: r.string(headersSecret.key, `${T}.otlpHeadersSecret.key`, 'headers', { nonEmpty: true }) },
    // The proxy refuses an interval under 100 ms: caught here, not as a crash-looping sidecar.
    metricExportIntervalMs: tel.metricExportIntervalMs === 0 ? 0 : r.integer(tel.metricExportIntervalMs, `${T}.metricExportIntervalMs`, 0, 100, 86_400_000),
    serviceName: r.string(tel.serviceName, `${T}.serviceName`, ''),
    resourceAttributes,
  };
  if (tel.captureContent !== undefined && typeof tel.captureContent !== 'boolean') {
    r.fail('injection.proxy.telemetry.captureContent', `must be true or false (got ${JSON.stringify(tel.captureContent)})`);
  }
  const init = r.section(inj.init, 'injection.init', ['resources']);
  const budgets = r.section(inj.budgets, 'injection.budgets', ['redisUrl', 'passwordSecret']);
  const secret = r.section(budgets.passwordSecret, 'injection.budgets.passwordSecret', ['name', 'key']);
  const redisUrl = r.string(budgets.redisUrl, 'injection.budgets.redisUrl', d.injection.budgets.redisUrl);
  if (redisUrl !== '' && !/^rediss?:\/\/[^\s/]+/.test(redisUrl)) {
    r.fail('injection.budgets.redisUrl', `must be a redis:// or rediss:// URL or empty (got ${JSON.stringify(redisUrl)})`);
  }
  const cap = r.section(inj.capture, 'injection.capture', [
    'includeOutboundPorts',
    'excludeOutboundPorts',
    'excludeOutboundCidrs',
    'ipv6',
    'iptablesMode',
    'excludeKubernetesApi',
    'kubernetesApiAddress',
    'meshProxyUids',
    'escapingContainers',
  ]);
  const mesh = r.section(cap.meshProxyUids, 'injection.capture.meshProxyUids', ['istio', 'linkerd']);
  const kubernetesApiAddress = r.string(cap.kubernetesApiAddress, 'injection.capture.kubernetesApiAddress', '').trim();
  if (kubernetesApiAddress !== '' && isIP(kubernetesApiAddress) === 0) {
    r.fail('injection.capture.kubernetesApiAddress', `must be an IP address or empty (got ${JSON.stringify(kubernetesApiAddress)})`);
  }
  const srv = r.section(top.server, 'server', ['port', 'tlsCert', 'tlsKey', 'certReloadSeconds']);

  const address = r.string(cp.address, 'injection.controlPlane.address', d.injection.controlPlane.address);
  if (address !== '' && !/^https?:\/\/[^\s/]+/.test(address)) {
    r.fail('injection.controlPlane.address', `must be an http(s) URL or empty (got ${JSON.stringify(address)})`);
  }
  const kubernetesVersion = r.string(inj.kubernetesVersion, 'injection.kubernetesVersion', '');
  if (kubernetesVersion !== '' && !parseKubernetesVersion(kubernetesVersion)) {
    r.fail('injection.kubernetesVersion', `must look like 1.29 or v1.29.3 (got ${JSON.stringify(kubernetesVersion)})`);
  }
  const includeOutboundPorts = r.ports(cap.includeOutboundPorts, 'injection.capture.includeOutboundPorts', d.injection.capture.includeOutboundPorts);
  if (includeOutboundPorts.length === 0) r.fail('injection.capture.includeOutboundPorts', 'must list at least one port');

  const config: WebhookConfig = {
    injection: {
      image: r.string(inj.image, 'injection.image', d.injection.image, { nonEmpty: true }),
      imagePullPolicy: r.oneOf(inj.imagePullPolicy, 'injection.imagePullPolicy', ['Always', 'IfNotPresent', 'Never'], d.injection.imagePullPolicy),
      nativeSidecar: r.oneOf(inj.nativeSidecar, 'injection.nativeSidecar', ['auto', 'always', 'never'], d.injection.nativeSidecar),
      kubernetesVersion,
      controlPlane: {
        address,
        namespace: r.string(cp.namespace, 'injection.controlPlane.namespace', d.injection.controlPlane.namespace, { nonEmpty: true }),
      },
      proxy: {
        // UID 0 is refused: capture exempts the proxy's UID, and exempting root would exempt every root app.
        uid: r.integer(proxy.uid, 'injection.proxy.uid', d.injection.proxy.uid, 1, 4294967294),
        gid: r.integer(proxy.gid, 'injection.proxy.gid', d.injection.proxy.gid, 1, 4294967294),
        capturePort: r.integer(proxy.capturePort, 'injection.proxy.capturePort', d.injection.proxy.capturePort, 1, 65535),
        adminPort: r.integer(proxy.adminPort, 'injection.proxy.adminPort', d.injection.proxy.adminPort, 1, 65535),
        resources: r.resources(proxy.resources, 'injection.proxy.resources', d.injection.proxy.resources),
        extraArgs: r.stringList(proxy.extraArgs, 'injection.proxy.extraArgs', d.injection.proxy.extraArgs),
        extraCaConfigMap: { name: extraCaName, key: extraCaKey },
        prometheusScrape: r.boolean(proxy.prometheusScrape, 'injection.proxy.prometheusScrape', false),
        telemetry: { otlpEndpoint, ...telemetryRest, auditLog: auditLogPath(r, tel.auditLog), captureContent: tel.captureContent === true },
      },
      init: { resources: r.resources(init.resources, 'injection.init.resources', d.injection.init.resources) },
      budgets: {
        redisUrl,
        passwordSecret: {
          name: r.string(secret.name, 'injection.budgets.passwordSecret.name', d.injection.budgets.passwordSecret.name),
          key: r.string(secret.key, 'injection.budgets.passwordSecret.key', d.injection.budgets.passwordSecret.key, { nonEmpty: true }),
        },
      },
      capture: {
        includeOutboundPorts,
        excludeOutboundPorts: r.ports(cap.excludeOutboundPorts, 'injection.capture.excludeOutboundPorts', d.injection.capture.excludeOutboundPorts),
        excludeOutboundCidrs: r.cidrs(cap.excludeOutboundCidrs, 'injection.capture.excludeOutboundCidrs', d.injection.capture.excludeOutboundCidrs),
        ipv6: r.oneOf(cap.ipv6, 'injection.capture.ipv6', ['auto', 'true', 'false'], d.injection.capture.ipv6),
        iptablesMode: r.oneOf(cap.iptablesMode, 'injection.capture.iptablesMode', ['auto', 'legacy', 'nft'], d.injection.capture.iptablesMode),
        excludeKubernetesApi: r.boolean(cap.excludeKubernetesApi, 'injection.capture.excludeKubernetesApi', true),
        kubernetesApiAddress,
        meshProxyUids: {
          istio: r.integer(mesh.istio, 'injection.capture.meshProxyUids.istio', ISTIO_PROXY_UID, 1, 4294967294),
          linkerd: r.integer(mesh.linkerd, 'injection.capture.meshProxyUids.linkerd', LINKERD_PROXY_UID, 1, 4294967294),
        },
        escapingContainers: r.oneOf(cap.escapingContainers, 'injection.capture.escapingContainers', ['deny', 'warn'], d.injection.capture.escapingContainers),
      },
    },
    server: {
      port: r.integer(srv.port, 'server.port', d.server.port, 1, 65535),
      tlsCert: r.string(srv.tlsCert, 'server.tlsCert', d.server.tlsCert),
      tlsKey: r.string(srv.tlsKey, 'server.tlsKey', d.server.tlsKey),
      certReloadSeconds: r.integer(srv.certReloadSeconds, 'server.certReloadSeconds', d.server.certReloadSeconds, 1, 3600),
    },
  };
  if (config.injection.proxy.capturePort === config.injection.proxy.adminPort) {
    r.fail('injection.proxy.adminPort', `must differ from capturePort (both ${config.injection.proxy.capturePort})`);
  }
  if ((config.server.tlsCert === '') !== (config.server.tlsKey === '')) {
    r.fail(config.server.tlsCert === '' ? 'server.tlsCert' : 'server.tlsKey', 'tlsCert and tlsKey go together: set both or neither');
  }
  return r.issues.length === 0 ? { ok: true, config } : { ok: false, issues: r.issues };
}

/** Parses a YAML (or JSON) config; throws a one-line UserError naming the source and the first bad field. */
export function parseConfig(text: string, source: string): WebhookConfig {
  const docs = parseAllDocuments(text).filter((d) => d.contents !== null);
  if (docs.length > 1) throw new UserError(`${source}: expected one YAML document, found ${docs.length}`);
  const doc = docs[0];
  if (doc && doc.errors.length > 0) throw new UserError(`${source}: invalid YAML: ${doc.errors[0]!.message.split('\n')[0]}`);
  const result = validateConfig(doc?.toJS());
  if (!result.ok) {
    const more = result.issues.length > 1 ? ` (and ${result.issues.length - 1} more)` : '';
    const first = result.issues[0]!;
    throw new UserError(`${source}: ${first.path}: ${first.message}${more}`);
  }
  return result.config;
}

/**
 * What only the running process knows: the Kubernetes API Service address from its own environment
 * (KUBERNETES_SERVICE_HOST, set by the kubelet in every pod), unless the config names one. Pure over `env`.
 */
export function withRuntimeDefaults(config: InjectionConfig, env: NodeJS.ProcessEnv): InjectionConfig {
  const host = env.KUBERNETES_SERVICE_HOST?.trim() ?? '';
  if (config.capture.kubernetesApiAddress !== '' || isIP(host) === 0) return config;
  return { ...config, capture: { ...config.capture, kubernetesApiAddress: host } };
}

/** Loads the config file, or the built-in defaults when no path is given. */
export async function loadConfig(path: string | undefined): Promise<WebhookConfig> {
  if (path === undefined) return defaultConfig();
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new UserError(`cannot read config file ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  return parseConfig(text, path);
}
