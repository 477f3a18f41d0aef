import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { find, NAMESPACE, render, template, validateObject, type K8sObject } from './render.js';

// The chart plugs into the ecosystem: Prometheus Operator monitors, the Grafana dashboard, a NetworkPolicy, zone
// spreading, a priority class, and images pinned by digest. Rendered with the real helm; every object validated.

type Obj = Record<string, unknown>;
const ALL = { podMonitor: { enabled: true, interval: '15s', labels: { release: 'kps' } }, serviceMonitor: { enabled: true, interval: '30s', labels: {} }, grafanaDashboard: { enabled: true, label: 'grafana_dashboard', labelValue: '1', namespace: 'monitoring', annotations: { grafana_folder: 'AI' } }, networkPolicy: { enabled: true, ingressFrom: [], apiServerPorts: [443, 6443], apiServerCidrs: [], extraEgress: [] } };
const podSpec = (objects: K8sObject[]): Obj => ((find(objects, 'Deployment', 'aigress').spec as Obj).template as { spec: Obj }).spec;

/** What Prometheus does with one relabeling rule (action replace): the regex anchored, $1 substituted. */
function relabel(rule: { sourceLabels: string[]; regex?: string; targetLabel: string; replacement?: string }, labels: Record<string, string>): Record<string, string> {
  const value = rule.sourceLabels.map((l) => labels[l] ?? '').join(';');
  const m = new RegExp(`^(?:${rule.regex ?? '(.*)'})$`).exec(value);
  if (!m) return labels;
  return { ...labels, [rule.targetLabel]: (rule.replacement ?? '$1').replace(/\$(\d)/g, (_s, i: string) => m[Number(i)] ?? '') };
}

describe('chart: monitoring, dashboard, network policy, scheduling, digests', () => {
  it('renders none of the optional objects by default; spreads replicas across zones; system-cluster-critical', () => {
    const objects = render();
    for (const kind of ['PodMonitor', 'ServiceMonitor', 'NetworkPolicy']) expect(objects.filter((o) => o.kind === kind)).toEqual([]);
    expect(objects.filter((o) => o.kind === 'ConfigMap').map((o) => o.metadata.name).sort()).toEqual(['aigress-config', 'aigress-default-policy']);
    const spec = podSpec(objects);
    expect(spec.priorityClassName).toBe('system-cluster-critical');
    expect(spec.topologySpreadConstraints).toEqual([{ maxSkew: 1, topologyKey: 'topology.kubernetes.io/zone', whenUnsatisfiable: 'ScheduleAnyway', labelSelector: { matchLabels: { 'app.kubernetes.io/name': 'aigress', 'app.kubernetes.io/component': 'control-plane' } } }]);
    // the spread selects exactly the Deployment's pods
    expect((spec.topologySpreadConstraints as Array<{ labelSelector: { matchLabels: Obj } }>)[0]!.labelSelector.matchLabels).toEqual((find(objects, 'Deployment', 'aigress').spec as { selector: { matchLabels: Obj } }).selector.matchLabels);
    expect(podSpec(render({ priorityClassName: '' })).priorityClassName).toBeUndefined();
    const own = [{ maxSkew: 2, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'DoNotSchedule', labelSelector: { matchLabels: { app: 'x' } } }];
    expect(podSpec(render({ topologySpreadConstraints: own })).topologySpreadConstraints).toEqual(own);
  });

  it('PodMonitor: every injected proxy\'s aigress-admin port in all namespaces, with the workload label the dashboard uses', () => {
    const objects = render(ALL);
    for (const o of objects) validateObject(o);
    const pm = find(objects, 'PodMonitor', 'aigress-proxies');
    expect(pm.apiVersion).toBe('monitoring.coreos.com/v1');
    expect(pm.metadata.labels?.release).toBe('kps');
    const spec = pm.spec as { namespaceSelector: Obj; selector: Obj; podMetricsEndpoints: Array<{ port: string; path: string; interval: string; relabelings: Array<Parameters<typeof relabel>[0]> }> };
    expect(spec.namespaceSelector).toEqual({ any: true });
    expect(spec.selector).toEqual({});
    const ep = spec.podMetricsEndpoints[0]!;
    expect([ep.port, ep.path, ep.interval]).toEqual(['aigress-admin', '/metrics', '15s']); // the injected port's name
    const workload = (kind: string, name: string): string | undefined =>
      ep.relabelings.reduce((l, r) => relabel(r, l), { __meta_kubernetes_pod_controller_kind: kind, __meta_kubernetes_pod_controller_name: name } as Record<string, string>).workload;
    expect(workload('ReplicaSet', 'chat-5d8f7c9b4')).toBe('chat');
    expect(workload('ReplicaSet', 'vector-db-api-7f9c6d5b8')).toBe('vector-db-api');
    expect(workload('StatefulSet', 'vector-db')).toBe('vector-db');
    expect(workload('Job', 'embeddings-28391')).toBe('embeddings-28391');
    // the dashboard has the namespace and workload variables and filters by them
    const dash = JSON.parse(readFileSync('docs/grafana-dashboard.json', 'utf8')) as { templating: { list: Array<{ name: string }> } };
    expect(dash.templating.list.map((v) => v.name)).toEqual(expect.arrayContaining(['namespace', 'workload']));
  });

  it('ServiceMonitor: the control plane over HTTPS, verified against the CA Secret (or cert-manager\'s)', () => {
    const sm = (values: Obj): { endpoints: Array<{ port: string; scheme: string; tlsConfig: { serverName: string; ca: { secret: { name: string; key: string } } } }>; selector: Obj } =>
      find(render({ ...ALL, ...values }), 'ServiceMonitor', 'aigress-control-plane').spec as never;
    const spec = sm({});
    const svc = find(render(), 'Service', 'aigress');
    expect(spec.selector).toEqual({ matchLabels: (svc.spec as { selector: Obj }).selector });
    expect(spec.endpoints[0]).toMatchObject({ port: 'https', scheme: 'https', tlsConfig: { serverName: `aigress.${NAMESPACE}.svc`, ca: { secret: { name: 'aigress-ca', key: 'tls.crt' } } } });
    expect((svc.spec as { ports: Array<{ name: string }> }).ports.map((p) => p.name)).toContain('https');
    expect(sm({ ca: { secretName: 'corp-ca', bootstrap: true } }).endpoints[0]!.tlsConfig.ca.secret.name).toBe('corp-ca');
  });

  it('Grafana dashboard ConfigMap: the grafana_dashboard label, and exactly docs/grafana-dashboard.json', () => {
    const cm = find(render(ALL), 'ConfigMap', 'aigress-grafana-dashboard');
    expect(cm.metadata.namespace).toBe('monitoring');
    expect(cm.metadata.labels?.grafana_dashboard).toBe('1');
    expect(cm.metadata.annotations).toEqual({ grafana_folder: 'AI' });
    const json = (cm.data as Record<string, string>)['aigress.json']!;
    expect(JSON.parse(json)).toEqual(JSON.parse(readFileSync('docs/grafana-dashboard.json', 'utf8')));
    // the chart's copy is the doc's (helm cannot read files outside the chart)
    expect(readFileSync('charts/aigress/dashboards/aigress.json', 'utf8')).toBe(readFileSync('docs/grafana-dashboard.json', 'utf8'));
  });

  it('NetworkPolicy: 8443 in, the API server and DNS out, for the control plane pods only', () => {
    const np = find(render(ALL), 'NetworkPolicy', 'aigress');
    validateObject(np);
    expect(np.spec).toEqual({
      podSelector: { matchLabels: { 'app.kubernetes.io/name': 'aigress', 'app.kubernetes.io/component': 'control-plane' } },
      policyTypes: ['Ingress', 'Egress'],
      ingress: [{ ports: [{ port: 8443, protocol: 'TCP' }] }],
      egress: [{ ports: [{ port: 443, protocol: 'TCP' }, { port: 6443, protocol: 'TCP' }] }, { ports: [{ port: 53, protocol: 'UDP' }, { port: 53, protocol: 'TCP' }] }],
    });
    const narrowed = find(render({ networkPolicy: { ...ALL.networkPolicy, apiServerCidrs: ['10.0.0.1/32'], ingressFrom: [{ ipBlock: { cidr: '10.0.0.0/8' } }] } }), 'NetworkPolicy', 'aigress').spec as { ingress: Obj[]; egress: Obj[] };
    expect(narrowed.egress[0]).toEqual({ ports: [{ port: 443, protocol: 'TCP' }, { port: 6443, protocol: 'TCP' }], to: [{ ipBlock: { cidr: '10.0.0.1/32' } }] });
    expect(narrowed.ingress[0]!.from).toEqual([{ ipBlock: { cidr: '10.0.0.0/8' } }]);
    // STS and Entra ID for credential minting, when 443 is narrowed to the API server
    const sts = { to: [{ ipBlock: { cidr: '52.94.0.0/16' } }], ports: [{ port: 443, protocol: 'TCP' }] };
    const withSts = find(render({ networkPolicy: { ...ALL.networkPolicy, apiServerCidrs: ['10.0.0.1/32'], extraEgress: [sts] } }), 'NetworkPolicy', 'aigress');
    validateObject(withSts);
    expect((withSts.spec as { egress: Obj[] }).egress).toEqual([expect.objectContaining({ to: [{ ipBlock: { cidr: '10.0.0.1/32' } }] }), expect.any(Object), sts]);
    // the container port it opens is the one the control plane listens on
    expect(((podSpec(render()).containers as Array<{ ports: Array<{ containerPort: number }> }>)[0]!.ports[0]!.containerPort)).toBe(8443);
  });

  it('image.digest pins the control plane and the injected containers by digest', () => {
    const digest = `sha256:${'ab'.repeat(32)}`;
    const objects = render({ image: { repository: 'registry.example.com/aigress', tag: '9.9.9', pullPolicy: 'IfNotPresent', digest } });
    expect((podSpec(objects).containers as Array<{ image: string }>)[0]!.image).toBe(`registry.example.com/aigress@${digest}`);
    const config = parse((find(objects, 'ConfigMap', 'aigress-config').data as Record<string, string>)['config.yaml']!) as { injection: { image: string } };
    expect(config.injection.image).toBe(`registry.example.com/aigress@${digest}`);
    const bad = template({ image: { repository: 'r', tag: '', pullPolicy: 'IfNotPresent', digest: 'latest' } });
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/digest/);
  });
});
