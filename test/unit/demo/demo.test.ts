import { spawn } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import type { CallOutcome } from '../../../cli/demo/calls.js';
import type { DemoReport } from '../../../cli/demo/run.js';
import { BIN, ensureDemoBuilt, ROOT, runCli } from './built.js';

// `aigress demo` from the build, as `npm run demo` runs it: what it reports must be what happened — statuses,
// denials, tokens metered equal to what the fake provider reported, the patch applied — and a failure must be
// one line and exit code 1.

let report: DemoReport;
let run: { code: number | null; stdout: string; stderr: string };
const byId = (id: string): CallOutcome => {
  const c = report.calls.find((x) => x.id === id);
  if (!c) throw new Error(`no call ${id} in the report`);
  return c;
};

beforeAll(async () => {
  ensureDemoBuilt();
  run = await runCli(['demo', '--json']);
  report = JSON.parse(run.stdout) as DemoReport;
}, 180_000);

describe('aigress demo --json', () => {
  it('exits 0 with a report of every step done, nothing on stderr, and its temp dir removed', () => {
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(report.ok).toBe(true);
    expect(report.failedStep).toBeUndefined();
    expect(report.kept).toBe(false);
    expect(existsSync(report.tempDir)).toBe(false);
    expect(report.wallMs).toBeGreaterThan(0);
    expect(report.sinceProcessStartMs).toBeGreaterThanOrEqual(report.wallMs);
  });

  it('admits the sample pod through the webhook and applies its patch: both containers, the env vars, the CA volume', () => {
    const a = report.admission!;
    expect(a.matchesInjector).toBe(true);
    expect(a.patchOps).toBeGreaterThan(0);
    expect(a.serviceName).toBe('aigress.aigress-system.svc');
    expect(a.initContainers.map((c) => c.name)).toEqual(['aigress-init', 'aigress-proxy']);
    const proxy = a.initContainers[1]!;
    expect(proxy.restartPolicy).toBe('Always');
    expect(proxy.runAsUser).toBe(1500);
    expect(a.initContainers[0]!.args).toEqual(expect.arrayContaining(['init', '--proxy-uid', '1500', '--capture-port', '14001']));
    const env = Object.fromEntries(a.env.map((e) => [e.name, e.value]));
    for (const name of ['SSL_CERT_FILE', 'NODE_EXTRA_CA_CERTS', 'REQUESTS_CA_BUNDLE', 'CURL_CA_BUNDLE']) expect(env[name]).toBe('/var/run/aigress/ca/bundle.pem');
    expect(a.mounts).toContainEqual({ container: 'app', name: 'aigress-ca', mountPath: '/var/run/aigress/ca', readOnly: true });
    expect(a.volumes.map((v) => v.name)).toContain('aigress-ca');
  });

  it('starts the proxy from the injected args, on ephemeral loopback ports instead of the pod\'s', () => {
    const p = report.proxy!;
    expect(p.args.slice(0, 5)).toEqual(['proxy', '--capture-port', '14001', '--admin-port', '14020']);
    expect(p.args).toEqual(expect.arrayContaining(['--policy', p.policyFile]));
    expect([p.injectedCapturePort, p.injectedAdminPort]).toEqual([14001, 14020]);
    expect(p.capturePort).not.toBe(14001);
    expect(p.capturePort).toBeGreaterThan(0);
    expect(p.adminPort).toBeGreaterThan(0);
  });

  it('lets the allowed calls through and meters exactly the tokens the fake provider reported', () => {
    for (const id of ['openai-chat', 'openai-stream', 'pii-restore', 'anthropic']) {
      const c = byId(id);
      expect(c, id).toMatchObject({ status: 200, decision: 'allow', upstreamRequests: 1, ok: true });
      expect(c.certificate!.issuer, id).toBe('aigress demo CA');
      expect(c.reportedTokens!.input, id).toBeGreaterThan(0);
      expect(c.reportedTokens!.output, id).toBeGreaterThan(0);
      expect(c.meteredTokens, id).toEqual(c.reportedTokens);
    }
  });

  it('redacts PII on the way out and restores it on the way back (the fake provider checked the placeholders)', () => {
    expect(byId('pii-restore')).toMatchObject({ status: 200, decision: 'allow', upstreamRequests: 1, ok: true, failures: [] });
  });

  it('denies the realtime model with 403 and the region-less Gemini call with 451, before anything leaves', () => {
    expect(byId('model-denied')).toMatchObject({ status: 403, decision: 'deny', deniedBy: 'policy', upstreamRequests: 0, reportedTokens: null, meteredTokens: { input: 0, output: 0 } });
    expect(byId('model-denied').denialMessage).toContain('gpt-4o-realtime-preview');
    expect(byId('region-denied')).toMatchObject({ status: 451, decision: 'deny', deniedBy: 'region', upstreamRequests: 0, reportedTokens: null });
    expect(byId('region-denied').denialMessage).toContain('"global"');
  });

  it('answers a call past the budget with 429 and Retry-After in Anthropic\'s shape, before anything leaves', () => {
    expect(byId('budget-exhausted')).toMatchObject({ status: 429, decision: 'deny', deniedBy: 'budget', upstreamRequests: 0, reportedTokens: null, ok: true });
    expect(byId('budget-exhausted').denialMessage).toMatch(/budgets\[0\] of policy team-a\/demo \(1000 output tokens per 1m, scope pod\)/);
  });

  it('passes the non-AI site through untouched: its own certificate, no AI request counted', () => {
    const c = byId('passthrough');
    expect(c).toMatchObject({ status: 200, decision: 'passthrough', upstreamRequests: 1 });
    expect(c.certificate).toEqual({ subject: 'example.org', issuer: 'demo public root (fake provider)' });
  });

  it('shows the proxy\'s counters: one request per mediated call and the tokens of the allowed ones', () => {
    const requests = report.metrics.filter((l) => l.startsWith('aigress_requests_total{'));
    expect(requests).toHaveLength(6); // one series per mediated call; the pass-through is not an AI request
    expect(requests).toContainEqual(expect.stringMatching(/model="gpt-4o-realtime-preview",decision="deny",code="403"\} 1$/));
    const chat = byId('openai-chat').meteredTokens;
    expect(report.metrics).toContain(`aigress_tokens_total{provider="openai",model="gpt-4o-mini",type="input"} ${chat.input}`);
    expect(report.metrics).toContain(`aigress_tokens_total{provider="openai",model="gpt-4o-mini",type="output"} ${chat.output}`);
  });
});

describe('aigress demo (text)', () => {
  it('prints the steps, the table and the timing, and --keep leaves the files it names', async () => {
    const r = await runCli(['demo', '--keep']);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/JSONPatch of \d+ operations applied/);
    expect(r.stdout).toMatch(/OpenAI, denied model\s+gpt-4o-realtime-preview\s+403\s+deny \(policy\)/);
    expect(r.stdout).toMatch(/^OK: every step had the expected outcome; wall time \d+\.\d\d s/m);
    const kept = /^Files kept in (\S+) /m.exec(r.stdout)?.[1];
    expect(kept).toBeDefined();
    expect(existsSync(`${kept}/bundle/bundle.pem`)).toBe(true);
    expect(existsSync(`${kept}/policy.yaml`)).toBe(true);
    rmSync(kept!, { recursive: true, force: true });
  }, 60_000);

  it('fails with one line naming the step and exit code 1 when a step cannot run', async () => {
    const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [BIN, 'demo'], { cwd: ROOT, env: { ...process.env, TMPDIR: '/nonexistent/aigress-demo' }, stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      child.on('close', (code) => resolve({ code, stderr }));
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('aigress: demo failed at step setup: cannot create a temporary directory in /nonexistent/aigress-demo: ENOENT\n');
  }, 60_000);
});
