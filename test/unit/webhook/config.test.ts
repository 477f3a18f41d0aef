import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { UserError } from '../../../shared/errors.js';
import { defaultConfig, loadConfig, parseConfig, parseKubernetesVersion } from '../../../webhook/config.js';

const fails = (text: string): string => {
  try {
    parseConfig(text, 'cfg.yaml');
  } catch (err) {
    expect(err).toBeInstanceOf(UserError);
    return (err as Error).message;
  }
  throw new Error('expected the config to be refused');
};

describe('control-plane config', () => {
  it('is the built-in defaults without a file and for an empty one', async () => {
    expect(await loadConfig(undefined)).toEqual(defaultConfig());
    expect(parseConfig('', 'empty.yaml')).toEqual(defaultConfig());
    expect(parseConfig('# only a comment\n', 'c.yaml')).toEqual(defaultConfig());
  });

  it('overrides field by field and keeps the other defaults', () => {
    const c = parseConfig('injection:\n  image: reg/aigress:dev\n  proxy:\n    uid: 2000\n  capture:\n    includeOutboundPorts: [443, "8000-8100", 443]\n    ipv6: true\n', 'c.yaml');
    expect(c.injection.image).toBe('reg/aigress:dev');
    expect(c.injection.proxy.uid).toBe(2000);
    expect(c.injection.proxy.gid).toBe(1500);
    expect(c.injection.capture.includeOutboundPorts).toEqual([
      { from: 443, to: 443 },
      { from: 8000, to: 8100 },
    ]);
    expect(c.injection.capture.ipv6).toBe('true');
    expect(c.injection.capture.escapingContainers).toBe('deny');
    expect(parseConfig('injection:\n  capture:\n    escapingContainers: warn\n', 'c.yaml').injection.capture.escapingContainers).toBe('warn');
    expect(c.server).toEqual(defaultConfig().server);
  });

  it.each([
    ['injection:\n  imag: x\n', 'cfg.yaml: injection.imag: unknown field (allowed: image, imagePullPolicy, nativeSidecar, kubernetesVersion, controlPlane, proxy, init, budgets, capture)'],
    ['injection:\n  budgets:\n    redisUrl: http://redis:6379\n', 'cfg.yaml: injection.budgets.redisUrl: must be a redis:// or rediss:// URL or empty (got "http://redis:6379")'],
    ['injection:\n  nativeSidecar: sometimes\n', 'cfg.yaml: injection.nativeSidecar: must be one of auto, always, never (got "sometimes")'],
    ['injection:\n  proxy:\n    uid: 0\n', 'cfg.yaml: injection.proxy.uid: must be an integer from 1 to 4294967294 (got 0)'],
    ['injection:\n  proxy:\n    adminPort: 14001\n', 'cfg.yaml: injection.proxy.adminPort: must differ from capturePort (both 14001)'],
    ['injection:\n  proxy:\n    resources:\n      requests: { memory: lots }\n', 'cfg.yaml: injection.proxy.resources.requests.memory: must be a Kubernetes quantity like 100m or 128Mi (got "lots")'],
    ['injection:\n  proxy:\n    resources:\n      requests: { memory: 1Gi }\n      limits: { memory: 512Mi }\n', 'cfg.yaml: injection.proxy.resources.requests.memory: 1Gi is above the limit 512Mi'],
    ['injection:\n  capture:\n    excludeOutboundCidrs: ["10.0.0/8"]\n', 'cfg.yaml: injection.capture.excludeOutboundCidrs[0]: "10.0.0/8" is not a CIDR (e.g. 10.0.0.0/8 or fd00::/8)'],
    ['injection:\n  capture:\n    includeOutboundPorts: []\n', 'cfg.yaml: injection.capture.includeOutboundPorts: must list at least one port'],
    ['injection:\n  capture:\n    excludeOutboundPorts: [99999]\n', 'cfg.yaml: injection.capture.excludeOutboundPorts[0]: 99999 is out of range (ports are 1-65535)'],
    ['injection:\n  capture:\n    escapingContainers: allow\n', 'cfg.yaml: injection.capture.escapingContainers: must be one of deny, warn (got "allow")'],
    ['injection:\n  kubernetesVersion: latest\n', 'cfg.yaml: injection.kubernetesVersion: must look like 1.29 or v1.29.3 (got "latest")'],
    ['injection:\n  controlPlane:\n    address: aigress:8443\n', 'cfg.yaml: injection.controlPlane.address: must be an http(s) URL or empty (got "aigress:8443")'],
    ['server:\n  tlsCert: /tls.crt\n', 'cfg.yaml: server.tlsKey: tlsCert and tlsKey go together: set both or neither'],
    ['server:\n  port: http\n', 'cfg.yaml: server.port: must be an integer from 1 to 65535 (got "http")'],
    ['- a\n- b\n', 'cfg.yaml: (document): must be a map with the sections injection and server'],
    ['injection: [\n', 'cfg.yaml: invalid YAML: '],
    ['a: 1\n---\nb: 2\n', 'cfg.yaml: expected one YAML document, found 2'],
  ])('refuses %j with a one-line message naming the field', (text, message) => {
    const got = fails(text);
    expect(got.startsWith(message)).toBe(true);
    expect(got).not.toContain('\n');
  });

  it('counts the other problems after the first', () => {
    expect(fails('injection:\n  image: ""\n  imagePullPolicy: Sometimes\n')).toMatch(/^cfg.yaml: injection.image: must not be empty \(and 1 more\)$/);
  });

  it('names the file it cannot read', async () => {
    await expect(loadConfig('/nonexistent/aigress.yaml')).rejects.toThrow('cannot read config file /nonexistent/aigress.yaml: ENOENT');
  });

  it('loads a file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'aigress-config-'));
    writeFileSync(join(dir, 'c.yaml'), 'server:\n  port: 9443\n');
    expect((await loadConfig(join(dir, 'c.yaml'))).server.port).toBe(9443);
  });

  it.each([
    ['1.29', [1, 29]],
    ['v1.30.2', [1, 30]],
    ['v1.28.9-eks-036c24b', [1, 28]],
    ['v1.31.1+k3s1', [1, 31]],
    ['1', undefined],
    ['one.two', undefined],
  ])('reads Kubernetes version %j', (text, expected) => expect(parseKubernetesVersion(text)).toEqual(expected));
});
