import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { UserError } from '../../../shared/errors.js';
import { defaultConfig } from '../../../webhook/config.js';
import { injectManifests } from '../../../webhook/inject/manifests.js';
import { waitReadyScript } from '../../../webhook/inject/template.js';

const config = defaultConfig().injection;
const run = (text: string, namespace?: string): ReturnType<typeof injectManifests> => injectManifests(text, { config, namespace });
const refusal = (text: string): string => {
  try {
    run(text);
  } catch (err) {
    expect(err).toBeInstanceOf(UserError);
    return (err as Error).message;
  }
  throw new Error('expected a refusal');
};

const deployment = (ns?: string): string => `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web${ns ? `\n  namespace: ${ns}` : ''}
spec:
  selector: { matchLabels: { app: web } }
  template:
    metadata: { labels: { app: web } }
    spec:
      containers: [{ name: web, image: web:1 }]
`;

const service = `# keep me
apiVersion: v1
kind: Service
metadata: { name: web }   # flow style stays flow style
spec:
  ports: [{port: 80}]
`;

describe('injectManifests', () => {
  it('keeps documents it does not inject byte for byte, and drops empty ones', () => {
    const out = run(`${service}---\n---\n${deployment()}`).output;
    expect(out.startsWith(service)).toBe(true);
    expect(out.split('\n---\n')).toHaveLength(2);
    expect(out).toContain('name: aigress-proxy');
  });

  it('prints nothing for empty input', () => {
    expect(run('').output).toBe('');
    expect(run('---\n# nothing\n').output).toBe('');
  });

  it('leaves a kind of another API group alone (a CRD named Deployment)', () => {
    const crd = 'apiVersion: example.com/v1\nkind: Deployment\nspec: {}\n';
    expect(run(crd)).toEqual({ output: crd, notes: [], injected: 0 });
  });

  it('uses --namespace when given, else the object\'s namespace, else default', () => {
    expect(run(deployment('kube-system')).notes).toEqual(['document 1 (Deployment web): not injected: kube-system is a system namespace']);
    expect(run(deployment('kube-system'), 'team-a').notes).toEqual([]);
    expect(run(deployment(), 'kube-public').notes[0]).toMatch(/not injected: kube-public is a system namespace/);
    expect(run(deployment()).output).toContain('aigress-init');
  });

  it.each([
    ['apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers: [ {name: a}\n', /^document 1: invalid YAML: /],
    [`${service}---\nkind: Pod\n  bad: indent\n`, /^document 2: invalid YAML: /],
    ['- just\n- a list\n', /^document 1: not a Kubernetes object \(expected a map with apiVersion and kind\)$/],
    ['apiVersion: v1\nmetadata: {name: a}\n', /^document 1: kind: required \(a non-empty string\)$/],
    ['apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec: {}\n', /^document 1 \(Deployment d\): spec.template: required \(a pod template\)$/],
    ['apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: c}\nspec: {jobTemplate: {spec: {template: {spec: {}}}}}\n', /^document 1 \(CronJob c\): spec.jobTemplate.spec.template.spec.containers: required$/],
    ['apiVersion: v1\nkind: List\nitems:\n  - apiVersion: v1\n    kind: Pod\n    metadata: {name: p}\n    spec: {containers: [{name: 7}]}\n', /^document 1 items\[0\] \(Pod p\): spec.containers\[0\].name: must be a string \(got 7\)$/],
    ['apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations: {aigress.io/proxy-memory: lots}\nspec: {containers: [{name: a}]}\n', /^document 1 \(Pod p\): annotation aigress.io\/proxy-memory: "lots": is not a Kubernetes quantity \(e.g. 256Mi\)$/],
  ])('refuses %j with one line naming the document and field', (text, message) => {
    const got = refusal(text);
    expect(got).toMatch(message);
    expect(got).not.toContain('\n');
  });
});

describe('the nativeSidecar: never postStart hook', () => {
  it('waits until /readyz answers 200, through refused connections and 503s', async () => {
    let hits = 0;
    const server = createServer((req, res) => {
      hits++;
      res.writeHead(req.url === '/readyz' && hits >= 3 ? 200 : 503).end();
    });
    // Reserve a port, release it, and start the hook before anything listens there.
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    await new Promise<void>((r) => server.close(() => r()));
    const hook = spawn(process.execPath, ['-e', waitReadyScript(port)], { stdio: 'ignore' });
    const exited = new Promise<number | null>((r) => hook.on('exit', (code) => r(code)));
    let done = false;
    void exited.then(() => (done = true));
    await new Promise((r) => setTimeout(r, 600));
    expect(done).toBe(false); // still waiting: nothing listens yet
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
    expect(await exited).toBe(0);
    expect(hits).toBe(3);
    await new Promise<void>((r) => server.close(() => r()));
  });
});
