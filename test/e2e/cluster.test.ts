import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import jsonpatch, { type Operation } from 'fast-json-patch';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parse } from 'yaml';
import { PROXY_UID } from '../../shared/constants.js';
import { startLocalControlPlane, type LocalControlPlane } from '../support/control-plane.js';
import { ANTHROPIC_HOST, createTestPki, OPENAI_HOST, PLAIN_HOST, startFakeProvider, type FakeProvider, type TestPki } from './support/fake-provider.js';
import { APP_UID, appPodYaml } from './support/injected-pod.js';
import { metricSum } from './support/metrics.js';
import { createPodNetwork, netnsExec, type PodNetwork } from './support/netns.js';
import { AIGRESS_ENTRYPOINT, CURL } from './support/paths.js';
import { IMAGE_PATH, PodHarness } from './support/pod.js';
import { findContainer, type Pod } from './support/pod-spec.js';
import { Background, type RunResult } from './support/process.js';
import { describeRoot } from './support/require-root.js';
import { review as reviewFor } from '../support/admission-review.js';

// The pod of the data-plane suite, in cluster mode (issue #4, "done means"): the pod is injected by the control
// plane's own /mutate (so the proxy gets --control-plane and the CA to verify it), the proxy gets its
// certificate by CSR and its policy by long poll from a control plane started here against the fake API
// server, and an EgressPolicy edit changes what the app sees, live.
//
// Where things run: the fake API server and the control plane in this process, listening on a Unix socket; a
// forwarder in the outside namespace accepts the pod's connections to aigress.aigress-system.svc:8443 (the
// control plane's Service name, mapped in the pod's hosts file) and relays them to that socket. TLS is end to
// end between the proxy and the control plane.

const KEYS = { openai: 'sk-e2e-cluster-openai-0000', anthropic: 'sk-ant-e2e-cluster-0000' };
const CP_HOST = 'aigress.aigress-system.svc';
const CP_PORT = 8443;
const PROXY = 'aigress-proxy';
const EP = 'aigress.io/v1alpha1';
/** The harness's projected token for audience aigress; the fake API server is told whose it is. */
const POD_TOKEN = 'e2e-dummy-token-for-audience-aigress';

describeRoot('cluster mode: a pod injected by the control plane, its proxy fed by it', () => {
  let dir: string;
  let net: PodNetwork;
  let pki: TestPki;
  let fake: FakeProvider;
  let lcp: LocalControlPlane;
  let forwarder: Background;
  let pod: PodHarness;
  let proxy: Background;
  let adminPort: number;

  /** POST /mutate as kube-apiserver does (over the Unix socket), and apply the JSONPatch it answers. */
  async function admit(podObj: Pod, socketPath: string): Promise<Pod> {
    const review = reviewFor(podObj, { uid: 'c0ffee00-0000-4000-8000-000000000004', name: podObj.metadata.name, namespace: 'team-a' });
    const body = JSON.stringify(review);
    const answer = await new Promise<{ response: { allowed: boolean; patch?: string } }>((resolve, reject) => {
      const req = request(
        { socketPath, servername: CP_HOST, ca: lcp.cp.caPem, method: 'POST', path: '/mutate', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
        (res) => {
          let text = '';
          res.on('data', (c: Buffer) => (text += c.toString()));
          res.on('end', () => resolve(JSON.parse(text) as { response: { allowed: boolean; patch?: string } }));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
    expect(answer.response.allowed).toBe(true);
    const ops = JSON.parse(Buffer.from(answer.response.patch!, 'base64').toString()) as Operation[];
    return jsonpatch.applyPatch(structuredClone(podObj), ops, true, false).newDocument;
  }

  function curlOpenAi(model: string, key = KEYS.openai): readonly string[] {
    const body = JSON.stringify({ model, messages: [{ role: 'user', content: `cluster e2e ${Date.now()}` }] });
    return [CURL, '-sS', '-v', '-w', '\n%{http_code}', `https://${OPENAI_HOST}/v1/chat/completions`, '-H', 'content-type: application/json', '-H', `authorization: Bearer ${key}`, '-d', body];
  }
  const status = (r: RunResult): string => r.stdout.slice(r.stdout.lastIndexOf('\n') + 1);
  const issuerSeen = (stderr: string): string => /^\*\s+issuer: (.*)$/m.exec(stderr)?.[1] ?? '(no certificate seen)';

  async function metrics(): Promise<string> {
    return (await pod.httpGet(adminPort, '/metrics')).body;
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'aig-e2e-cluster-'));
    chmodSync(dir, 0o755);
    net = await createPodNetwork({ hosts: [OPENAI_HOST, CP_HOST] });
    pki = await createTestPki(dir, [OPENAI_HOST, ANTHROPIC_HOST, PLAIN_HOST]);
    fake = await startFakeProvider({ outsideNs: net.out, pki, dir });

    const socketPath = join(dir, 'control-plane.sock');
    // Port 443 (the Service's) is the fake provider's in the outside namespace: the relay takes 8443.
    lcp = await startLocalControlPlane({ socketPath, address: `https://${CP_HOST}:${CP_PORT}` });
    lcp.enableNamespace('team-a');
    lcp.api.addToken(POD_TOKEN, { namespace: 'team-a', serviceAccount: 'e2e-app', audiences: ['aigress'], podName: 'e2e-app' });
    const relay = `const n=require("net");n.createServer(c=>{const u=n.connect(${JSON.stringify(socketPath)});c.pipe(u).pipe(c);c.on("error",()=>u.destroy());u.on("error",()=>c.destroy())}).listen(${CP_PORT},${JSON.stringify(net.outAddr)},()=>console.log("relaying"))`;
    const [cmd, args] = netnsExec(net.out, [process.execPath, '-e', relay]);
    forwarder = new Background(cmd, args);
    await forwarder.waitFor('the relay to listen', () => forwarder.stdout.includes('relaying'));

    const injected = await admit(parse(appPodYaml(KEYS)) as Pod, socketPath);
    const proxySpec = findContainer(injected, PROXY);
    expect(proxySpec.args).toEqual(expect.arrayContaining(['--control-plane', `https://${CP_HOST}:${CP_PORT}`]));
    expect(proxySpec.args).not.toContain('--policy');
    expect(proxySpec.env?.find((e) => e.name === 'AIGRESS_CONTROL_PLANE_CA')?.value).toBe(lcp.cp.caPem);
    expect(proxySpec.securityContext?.runAsUser).toBe(PROXY_UID);
    adminPort = Number(proxySpec.startupProbe?.httpGet?.port);
    const appHome = join(dir, 'home-app');
    mkdirSync(appHome);
    chownSync(appHome, APP_UID, APP_UID);
    pod = new PodHarness({ net, pod: injected, dir, entrypoint: { aigress: AIGRESS_ENTRYPOINT }, imageEnv: { app: { PATH: IMAGE_PATH, HOME: appHome } } });
    const init = pod.start('aigress-init');
    expect((await init.exited).code, init.stderr).toBe(0);
    proxy = pod.start(PROXY, { extraEnv: { NODE_EXTRA_CA_CERTS: pki.rootFile } });
    await pod.waitProbe(PROXY, proxy, 30_000);
  }, 120_000);

  afterAll(async () => {
    await proxy?.stop(10_000);
    await forwarder?.stop();
    await fake?.stop();
    await lcp?.close();
    await net?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('got its certificate by CSR for its namespace, and the app sees a leaf from the control plane\'s CA', async () => {
    const issued = lcp.logText().split('\n').filter((l) => l.includes('"leaf certificate issued"')).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(issued).toHaveLength(1);
    expect(issued[0]).toMatchObject({ namespace: 'team-a', serviceAccount: 'e2e-app', pod: 'e2e-app' });
    expect(issued[0]!.names).toEqual(expect.arrayContaining([OPENAI_HOST]));
    const r = await pod.exec('app', curlOpenAi('gpt-4o-mini'));
    expect(status(r), r.stderr).toBe('200');
    expect(issuerSeen(r.stderr)).toMatch(/CN=aigress CA/);
  });

  it('a policy edit changes what the app gets, live, and an invalid edit changes nothing', async () => {
    expect(status(await pod.exec('app', curlOpenAi('gpt-4o-mini')))).toBe('200');
    const applied = Date.now();
    lcp.api.put(EP, 'egresspolicies', { apiVersion: EP, kind: 'EgressPolicy', metadata: { name: 'team-a', namespace: 'team-a' }, spec: { models: { deny: ['gpt-4o-mini'] } } });
    let r: RunResult | undefined;
    while (Date.now() - applied < 5_000) {
      r = await pod.exec('app', curlOpenAi('gpt-4o-mini'));
      if (status(r) === '403') break;
    }
    expect(status(r!)).toBe('403');
    console.log(`cluster e2e: policy edit in effect in the pod after ${Date.now() - applied} ms`);
    expect(status(await pod.exec('app', curlOpenAi('gpt-4o')))).toBe('200');
    expect(metricSum(await metrics(), 'aigress_proxy_policy_updates_total', {})).toBe(1);

    lcp.api.put(EP, 'egresspolicies', { apiVersion: EP, kind: 'EgressPolicy', metadata: { name: 'team-a', namespace: 'team-a' }, spec: { models: { deny: [] }, filters: [{ type: 'regex', pattern: '(unclosed' }] } });
    const deadline = Date.now() + 5_000;
    let cond: { status?: string; reason?: string } = {};
    while (Date.now() < deadline && cond.status !== 'False') {
      cond = ((lcp.api.get(EP, 'egresspolicies', 'team-a', 'team-a')!.status as { conditions?: Array<{ status: string; reason: string }> } | undefined)?.conditions ?? [])[0] ?? {};
      await new Promise((res) => setTimeout(res, 100));
    }
    expect(cond).toMatchObject({ status: 'False', reason: 'Invalid' });
    await new Promise((res) => setTimeout(res, 1000));
    expect(status(await pod.exec('app', curlOpenAi('gpt-4o-mini')))).toBe('403');
    expect(metricSum(await metrics(), 'aigress_proxy_policy_updates_total', {})).toBe(1);
  });

  it('managed credentials from the control plane: the app sends a placeholder, the provider gets the Secret\'s key, an edit rotates it', async () => {
    const MANAGED = 'sk-e2e-cluster-MANAGED-1111';
    const ROTATED = 'sk-e2e-cluster-ROTATED-2222';
    const secret = (key: string) => ({ metadata: { name: 'openai-key', namespace: 'aigress-system', annotations: { 'aigress.io/credential-namespaces': 'team-a' } }, stringData: { apiKey: key } });
    lcp.api.put('v1', 'secrets', secret(MANAGED));
    lcp.api.put(EP, 'egresspolicies', {
      apiVersion: EP, kind: 'EgressPolicy', metadata: { name: 'team-a', namespace: 'team-a' },
      spec: { models: { deny: [] }, credentials: [{ provider: 'openai', secretRef: { name: 'openai-key', key: 'apiKey' } }] },
    });
    const placeholder = 'aigress-managed-credential';
    const keyUpstream = async (): Promise<string | undefined> => {
      const mark = fake.mark();
      const r = await pod.exec('app', curlOpenAi('gpt-4o-mini', placeholder));
      if (status(r) !== '200') return `status ${status(r)}`;
      return String(fake.requestsSince(mark).at(-1)?.headers.authorization);
    };
    let got: string | undefined;
    for (const deadline = Date.now() + 5_000; Date.now() < deadline && got !== `Bearer ${MANAGED}`;) got = await keyUpstream();
    expect(got).toBe(`Bearer ${MANAGED}`);
    const edited = Date.now();
    lcp.api.put('v1', 'secrets', secret(ROTATED));
    for (const deadline = Date.now() + 5_000; Date.now() < deadline && got !== `Bearer ${ROTATED}`;) {
      got = await keyUpstream();
      expect([`Bearer ${MANAGED}`, `Bearer ${ROTATED}`]).toContain(got); // never the placeholder, never a failure
    }
    expect(got).toBe(`Bearer ${ROTATED}`);
    console.log(`cluster e2e: Secret edit carried by the pod's next request after ${Date.now() - edited} ms`);
    const logs = `${proxy.stdout}\n${proxy.stderr}\n${lcp.logText()}`;
    for (const key of [MANAGED, ROTATED]) for (const form of [key, Buffer.from(key).toString('base64')]) expect(logs).not.toContain(form);
  });
});
