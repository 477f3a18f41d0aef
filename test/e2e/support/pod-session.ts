import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { PROXY_UID } from '../../../shared/constants.js';
import { createTestPki, startFakeProvider, type FakeProvider, type FakeProviderOptions, type TestPki } from './fake-provider.js';
import { APP_UID, injectAppPod, type AppPodOptions, type InjectedPodFiles } from './injected-pod.js';
import { metricSum } from './metrics.js';
import { createPodNetwork, type PodNetwork } from './netns.js';
import { AIGRESS_ENTRYPOINT } from './paths.js';
import { IMAGE_PATH, PodHarness } from './pod.js';
import { findContainer } from './pod-spec.js';
import type { Background } from './process.js';

// One suite's pod, brought up the way the cluster would: the two namespaces, the fake provider outside, the app
// pod run through `aigress inject`, and its init container run to completion (as the kubelet runs it) before
// anything else. The proxy is started by the suite, when and as often as it needs it.

export const INIT = 'aigress-init';
export const PROXY = 'aigress-proxy';
export const APP = 'app';

export interface PodSessionOptions {
  /** Prefix of the run's temp dir under the OS temp dir. */
  tmpPrefix: string;
  /** Host names the pod resolves to the outside world; each gets a certificate from the test root. */
  hosts: readonly string[];
  /** Which of those hosts the fake provider plays as which provider (its defaults otherwise). */
  fakeHosts?: Pick<FakeProviderOptions, 'openaiHosts' | 'anthropicHosts' | 'bedrockHosts'>;
  /** The API keys in the app's own spec. */
  keys: { openai: string; anthropic: string };
  app?: AppPodOptions;
}

/**
 * Fields are set as the bring-up gets to them, so `stop()` undoes exactly what a failed `start()` did.
 * Read them only after `start()` resolved (i.e. in tests and inner hooks).
 */
export class PodSession {
  dir!: string;
  net!: PodNetwork;
  pki!: TestPki;
  fake!: FakeProvider;
  files!: InjectedPodFiles;
  pod!: PodHarness;
  /** The UID the injected spec runs the proxy as. */
  proxyUid!: number;
  /** The proxy's admin port (probes, /metrics), from its startup probe. */
  adminPort!: number;
  private readonly proxies: Background[] = [];

  constructor(private readonly opts: PodSessionOptions) {}

  async start(): Promise<void> {
    const { opts } = this;
    this.dir = mkdtempSync(join(tmpdir(), opts.tmpPrefix));
    chmodSync(this.dir, 0o755);
    this.net = await createPodNetwork({ hosts: opts.hosts });
    this.pki = await createTestPki(this.dir, opts.hosts);
    this.fake = await startFakeProvider({ outsideNs: this.net.out, pki: this.pki, dir: this.dir, ...opts.fakeHosts });

    // The CA key is made readable by the proxy's UID; the spec must then run the proxy as that UID.
    this.files = await injectAppPod(this.dir, opts.keys, PROXY_UID, opts.app);
    const proxySpec = findContainer(this.files.pod, PROXY);
    this.proxyUid = proxySpec.securityContext?.runAsUser ?? -1;
    expect(this.proxyUid).toBe(PROXY_UID);
    this.adminPort = Number(proxySpec.startupProbe?.httpGet?.port);
    const appHome = join(this.dir, 'home-app');
    mkdirSync(appHome);
    chownSync(appHome, APP_UID, APP_UID);
    this.pod = new PodHarness({
      net: this.net,
      pod: this.files.pod,
      dir: this.dir,
      entrypoint: { aigress: AIGRESS_ENTRYPOINT },
      // What the images set; the spec's env comes on top. The app image gives its user a home.
      imageEnv: { [APP]: { PATH: IMAGE_PATH, HOME: appHome } },
    });

    // The init container runs to completion before anything else starts, as the kubelet runs it.
    const init = this.pod.start(INIT);
    const status = await init.exited;
    expect({ status, stderr: init.stderr }).toMatchObject({ status: { code: 0 } });
  }

  /** The proxy container, started as its spec says, plus the one thing the outside world provides; resolves once its probe passes. */
  async startProxy(): Promise<Background> {
    const proxy = this.pod.start(PROXY, {
      // The test root stands in for the public roots real providers chain to: the proxy must verify the
      // provider's certificate against it (Node's own roots plus NODE_EXTRA_CA_CERTS).
      extraEnv: { NODE_EXTRA_CA_CERTS: this.pki.rootFile },
    });
    this.proxies.push(proxy);
    await this.pod.waitProbe(PROXY, proxy);
    return proxy;
  }

  /** Stops any proxy still running, the fake provider and the namespaces, and removes the temp dir. */
  async stop(): Promise<void> {
    for (const proxy of this.proxies) if (proxy.running) await proxy.stop(10_000);
    await this.fake?.stop();
    await this.net?.destroy();
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }

  /** The proxy's /metrics, scraped from outside the pod as Prometheus would. */
  async metrics(): Promise<string> {
    const r = await this.pod.httpGet(this.adminPort, '/metrics');
    expect(r.status).toBe(200);
    return r.body;
  }

  /** Waits until a counter reaches `target` (requests are counted when they end, just after the app sees it). */
  async waitMetric(name: string, labels: Record<string, string>, target: number): Promise<number> {
    const deadline = Date.now() + 5_000;
    let value = NaN;
    while (Date.now() < deadline) {
      value = metricSum(await this.metrics(), name, labels);
      if (value >= target) return value;
      await new Promise((r) => setTimeout(r, 100));
    }
    return value;
  }
}

/** Prompts no other test sends: the fake provider echoes them, so an answer proves whose request it was. */
export function promptLog(): { sent: string[]; prompt: (what: string) => string } {
  const sent: string[] = [];
  const prompt = (what: string): string => {
    const text = `e2e ${what} #${sent.length + 1} ${process.pid}-${Date.now()}`;
    sent.push(text);
    return text;
  };
  return { sent, prompt };
}
