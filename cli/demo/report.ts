import type { CallOutcome, Tokens } from './calls.js';
import type { DemoReport } from './run.js';

// The demo's human-readable summary (pure: report in, text out). --json prints the report itself instead.

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd());
}

const tokens = (t: Tokens | null): string => (t ? `${t.input}+${t.output}` : '-');

function decision(c: CallOutcome): string {
  return c.deniedBy ? `${c.decision} (${c.deniedBy})` : c.decision;
}

const seconds = (ms: number | undefined): string => `${((ms ?? 0) / 1000).toFixed(2)} s`;

export function formatReport(r: DemoReport): string {
  const out: string[] = ['aigress demo: admission → injected pod → proxy → calls as the app, all on loopback (no cluster, no root)', ''];
  const a = r.admission;
  if (a) {
    out.push(`1. Admission: AdmissionReview for a pod of Deployment chatbot (namespace team-a) → the webhook's HTTPS /mutate,`);
    out.push(`   certificate verified as ${a.serviceName} against the demo CA; JSONPatch of ${a.patchOps} operations applied`);
    for (const c of a.initContainers) {
      const kind = c.restartPolicy === 'Always' ? 'native sidecar (init, restartPolicy: Always)' : 'init container';
      out.push(`   + ${c.name.padEnd(13)} ${kind}, UID ${c.runAsUser ?? '?'}`);
      out.push(`       aigress ${c.args.join(' ')}`);
    }
    for (const c of a.containers) out.push(`   + ${c.name.padEnd(13)} container, UID ${c.runAsUser ?? '?'}: aigress ${c.args.join(' ')}`);
    const byContainer = new Map<string, string[]>();
    for (const e of a.env) byContainer.set(e.container, [...(byContainer.get(e.container) ?? []), e.name]);
    for (const [c, names] of byContainer) out.push(`   + env of ${c}: ${names.join(', ')}`);
    for (const m of a.mounts) out.push(`   + mount in ${m.container}: ${m.name} at ${m.mountPath}${m.readOnly ? ' (read-only)' : ''}`);
    out.push(`   + volumes: ${a.volumes.map((v) => `${v.name} (${v.kind})`).join(', ')}`);
    for (const k of Object.keys(a.annotations)) out.push(`   + annotation ${k}`);
    for (const w of a.warnings) out.push(`   ! warning: ${w}`);
    out.push('');
  }
  const p = r.proxy;
  if (p) {
    out.push('2. Proxy: started in-process from the injected aigress-proxy args (standalone mode: --policy, --ca-dir, --credentials-dir)');
    out.push(`   capture 127.0.0.1:${p.capturePort} (${p.injectedCapturePort} in the pod), admin 127.0.0.1:${p.adminPort} (${p.injectedAdminPort} in the pod): ephemeral here`);
    out.push(`   CA bundle written to ${p.bundleDir} (${p.injectedBundleDir} in the pod)`);
    out.push(`   upstreams ${p.resolved.join(', ')} → fake provider 127.0.0.1:${p.fakeProviderPort}, TLS verified against its own root`);
    const list = (l: string[]): string => `[${l.join(', ')}]`;
    out.push(`   policy: regions allow ${list(p.policy.regions)} (unknown: ${p.policy.unknownRegions}); models allow ${list(p.policy.allowModels)}, deny ${list(p.policy.denyModels)}`);
    out.push('');
  }
  if (r.calls.length > 0) {
    out.push('3. Calls as the app. In a pod iptables steers them to the capture port; here the demo dials it with the');
    out.push('   provider\'s name as SNI, trusting only the bundle the proxy wrote (the non-AI site: only its own public root).');
    const rows = [['call', 'model', 'status', 'decision', 'certificate from', 'tokens provider → metered', 'ok']];
    for (const c of r.calls) {
      rows.push([
        c.title,
        c.model ?? '-',
        String(c.status ?? 'none'),
        decision(c),
        c.certificate?.issuer ?? '-',
        `${tokens(c.reportedTokens)} → ${tokens(c.meteredTokens)}`,
        c.ok ? 'yes' : 'NO',
      ]);
    }
    out.push(...table(rows).map((l) => `   ${l}`));
    for (const c of r.calls) {
      out.push(`   - ${c.title}: ${c.shows}`);
      if (c.denialMessage !== undefined) out.push(`     the app read: ${c.denialMessage}`);
      for (const f of c.failures) out.push(`     ! ${f}`);
    }
    out.push('   (tokens: input+output as the provider reported them → as the proxy metered them)');
    out.push('');
  }
  if (r.metrics.length > 0) {
    out.push(`4. The proxy's /metrics (admin port):`);
    for (const l of r.metrics) out.push(`   ${l}`);
    out.push('');
  }
  const ph = r.phasesMs;
  const timing = `wall time ${seconds(r.wallMs)}, ${seconds(r.sinceProcessStartMs)} since the process started (setup ${seconds(ph.setup)}, admission ${seconds(ph.admission)}, proxy ready ${seconds(ph.proxyReady)}, calls ${seconds(ph.calls)})`;
  if (r.kept) out.push(`Files kept in ${r.tempDir} (CA, policy.yaml, bundle/, fake-provider-root.pem)`);
  out.push(r.ok ? `OK: every step had the expected outcome; ${timing}` : `FAILED at ${r.failedStep ?? '?'}: ${r.failure ?? 'unknown'}; ${timing}`);
  return `${out.join('\n')}\n`;
}
