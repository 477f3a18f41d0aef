import { X509Certificate, createPrivateKey } from 'node:crypto';
import { ANNOTATION_STATUS, INIT_CONTAINER_NAME, LABEL_INJECT, PROXY_CONTAINER_NAME } from '../../shared/constants.js';
import { CRD_NAMES, isExcluded, labelsOf, nameOf, type CheckOptions, type Facts, type Obj, type Read } from './facts.js';

// `aigress check`'s judgement, pure: facts read from the cluster in, one result per check out, each with a hint
// that says what to do. Nothing here talks to the cluster.

export type Status = 'ok' | 'warn' | 'fail' | 'skip';

export interface CheckResult {
  id: string;
  status: Status;
  message: string;
  hint?: string;
}

const PSA_ENFORCE = 'pod-security.kubernetes.io/enforce';
/** Native sidecars (restartPolicy: Always on init containers) are on by default from this minor. */
export const NATIVE_SIDECAR_MINOR = 29;

const meta = (o: Obj): Obj => (o.metadata as Obj | undefined) ?? {};
const why = (r: Read<unknown>): string => (r.ok ? '' : r.status ? `${r.error} (HTTP ${r.status})` : r.error);
const notFound = (r: Read<unknown>): boolean => !r.ok && r.status === 404;

export function parseMinor(gitVersion: string): [number, number] | undefined {
  const m = /^v?(\d+)\.(\d+)/.exec(gitVersion);
  return m ? [Number(m[1]), Number(m[2])] : undefined;
}

function apiServer(f: Facts): CheckResult[] {
  if (!f.version.ok) {
    return [{ id: 'kubernetes-api', status: 'fail', message: `cannot reach the API server at ${f.server}: ${why(f.version)}`, hint: 'check the kubeconfig (--kubeconfig, $KUBECONFIG) and that kubectl get --raw /version works' }];
  }
  const git = String(f.version.value.gitVersion ?? '');
  const v = parseMinor(git);
  const out: CheckResult[] = [{ id: 'kubernetes-api', status: 'ok', message: `reachable at ${f.server}` }];
  if (!v) out.push({ id: 'kubernetes-version', status: 'warn', message: `cannot read the version ${JSON.stringify(git)}` });
  else if (v[0] > 1 || v[1] >= NATIVE_SIDECAR_MINOR) out.push({ id: 'kubernetes-version', status: 'ok', message: `${git}: native sidecars supported (1.${NATIVE_SIDECAR_MINOR}+): the proxy starts before the app and stops after it` });
  else {
    out.push({
      id: 'kubernetes-version', status: 'warn',
      message: `${git}: no native sidecars (1.${NATIVE_SIDECAR_MINOR}+): the proxy runs as a regular container, so pods' own init containers cannot reach AI providers and Jobs need the proxy shut down`,
      hint: 'upgrade the cluster to 1.29 or later, or see docs/injection.md ("nativeSidecar: never")',
    });
  }
  return out;
}

/** The schema the API server serves for each version, as a comparable string. */
function servedSchemas(crd: Obj): string {
  const versions = ((crd.spec as Obj | undefined)?.versions as Obj[] | undefined) ?? [];
  return JSON.stringify(versions.map((v) => ({ name: v.name, served: v.served, schema: v.schema, columns: v.additionalPrinterColumns })));
}

function crds(f: Facts, o: CheckOptions, pre: boolean): CheckResult[] {
  return CRD_NAMES.map((name): CheckResult => {
    const r = f.crds[name]!;
    const apply = 'kubectl apply --server-side -f charts/aigress/crds/ (helm upgrade does not update CRDs)';
    if (notFound(r)) {
      return pre
        ? { id: `crd ${name}`, status: 'ok', message: 'not installed yet: helm install installs it' }
        : { id: `crd ${name}`, status: 'fail', message: 'not installed', hint: apply };
    }
    if (!r.ok) return { id: `crd ${name}`, status: 'fail', message: `cannot read it: ${why(r)}`, hint: 'your account needs get on customresourcedefinitions' };
    const expected = o.expectedCrds?.[name];
    if (!expected) return { id: `crd ${name}`, status: 'ok', message: 'installed (this aigress has no chart beside it to compare the schema with)' };
    if (servedSchemas(r.value) !== servedSchemas(expected)) {
      return { id: `crd ${name}`, status: pre ? 'warn' : 'fail', message: `installed, but its schema differs from aigress ${o.clientVersion}'s`, hint: apply };
    }
    return { id: `crd ${name}`, status: 'ok', message: `installed and current (aigress ${o.clientVersion})` };
  });
}

function controlPlane(f: Facts, o: CheckOptions): CheckResult {
  const id = 'control-plane';
  if (notFound(f.deployment)) return { id, status: 'fail', message: `no Deployment aigress in namespace ${o.namespace}`, hint: `helm install aigress charts/aigress -n ${o.namespace} --create-namespace (or give --aigress-namespace)` };
  if (!f.deployment.ok) return { id, status: 'fail', message: `cannot read Deployment ${o.namespace}/aigress: ${why(f.deployment)}` };
  const spec = (f.deployment.value.spec as Obj | undefined) ?? {};
  const status = (f.deployment.value.status as Obj | undefined) ?? {};
  const want = typeof spec.replicas === 'number' ? spec.replicas : 1;
  const ready = typeof status.readyReplicas === 'number' ? status.readyReplicas : 0;
  const hint = `kubectl -n ${o.namespace} get pods -l app.kubernetes.io/component=control-plane; kubectl -n ${o.namespace} logs deploy/aigress`;
  if (ready === 0) return { id, status: 'fail', message: `0 of ${want} replicas ready: admission fails closed, no pod in an opted-in namespace can be created`, hint };
  if (ready < want) return { id, status: 'warn', message: `${ready} of ${want} replicas ready`, hint };
  if (want < 2) return { id, status: 'warn', message: `${ready} of ${want} replica ready: one node drain stops pod creation in opted-in namespaces`, hint: 'set replicas: 2 or more in the chart values' };
  return { id, status: 'ok', message: `${ready} of ${want} replicas ready` };
}

/** The CA certificate (PEM) from the Secret, when it parses. */
export function caFromSecret(secret: Obj): { cert?: X509Certificate; error?: string; keyMatches?: boolean } {
  const data = (secret.data as Record<string, string> | undefined) ?? {};
  if (!data['tls.crt']) return { error: 'has no tls.crt' };
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(Buffer.from(data['tls.crt'], 'base64'));
  } catch (err) {
    return { error: `tls.crt is not a certificate: ${(err as Error).message}` };
  }
  let keyMatches: boolean | undefined;
  if (data['tls.key']) {
    try {
      keyMatches = cert.checkPrivateKey(createPrivateKey(Buffer.from(data['tls.key'], 'base64')));
    } catch {
      keyMatches = false;
    }
  }
  return { cert, keyMatches };
}

function caSecret(f: Facts, o: CheckOptions): { result: CheckResult; cert?: X509Certificate } {
  const id = 'ca';
  const name = `${o.namespace}/${o.caSecret}`;
  if (notFound(f.caSecret)) return { result: { id, status: 'fail', message: `no Secret ${name}`, hint: 'the control plane creates it at start (ca.bootstrap: true); see its logs' } };
  if (!f.caSecret.ok) return { result: { id, status: 'fail', message: `cannot read Secret ${name}: ${why(f.caSecret)}`, hint: 'check needs get on that Secret (it only reads the certificate, never prints the key)' } };
  const ca = caFromSecret(f.caSecret.value);
  if (!ca.cert) return { result: { id, status: 'fail', message: `Secret ${name} ${ca.error}` } };
  const cert = ca.cert;
  if (!cert.ca) return { result: { id, status: 'fail', message: `Secret ${name}: the certificate is not a CA (basicConstraints CA:FALSE)` }, cert };
  if (ca.keyMatches === false) return { result: { id, status: 'fail', message: `Secret ${name}: tls.key does not belong to tls.crt` }, cert };
  const left = (Date.parse(cert.validTo) - o.now.getTime()) / 86_400_000;
  const rotate = 'rotate the CA (docs/operations.md, "CA rotation"): proxies renew their leaves from the new one';
  if (left <= 0) return { result: { id, status: 'fail', message: `Secret ${name}: the CA expired on ${new Date(cert.validTo).toISOString()}`, hint: rotate }, cert };
  if (left < o.caWarnDays) return { result: { id, status: 'warn', message: `Secret ${name}: the CA expires in ${Math.floor(left)} days (${new Date(cert.validTo).toISOString()})`, hint: rotate }, cert };
  return { result: { id, status: 'ok', message: `Secret ${name}: valid CA until ${new Date(cert.validTo).toISOString().slice(0, 10)} (${Math.floor(left)} days)` }, cert };
}

function webhookBundle(f: Facts, cert: X509Certificate | undefined): CheckResult {
  const id = 'webhook-ca-bundle';
  if (notFound(f.webhookConfig)) return { id, status: 'fail', message: 'no MutatingWebhookConfiguration aigress: pods are not injected', hint: 'helm upgrade --install aigress charts/aigress' };
  if (!f.webhookConfig.ok) return { id, status: 'fail', message: `cannot read MutatingWebhookConfiguration aigress: ${why(f.webhookConfig)}` };
  const hooks = (f.webhookConfig.value.webhooks as Obj[] | undefined) ?? [];
  const bundles = hooks.map((h) => String(((h.clientConfig as Obj | undefined)?.caBundle as string | undefined) ?? ''));
  if (bundles.some((b) => b === '')) return { id, status: 'fail', message: 'a webhook has no caBundle: the API server cannot call it (admission fails closed)', hint: 'the control plane writes it at start; see its logs' };
  if (!cert) return { id, status: 'skip', message: 'cannot compare: the CA is not readable' };
  const matches = bundles.every((b) => {
    try {
      return Buffer.from(b, 'base64').toString().includes(cert.toString().trim());
    } catch {
      return false;
    }
  });
  if (!matches) return { id, status: 'fail', message: 'the caBundle is not the CA in the Secret: the API server will not trust the webhook', hint: 'the control plane re-writes it within a minute; if it stays, see its logs (RBAC on mutatingwebhookconfigurations)' };
  return { id, status: 'ok', message: 'caBundle matches the CA' };
}

function dryRun(f: Facts): CheckResult {
  const id = 'webhook-dry-run';
  if (!f.dryRun) return { id, status: 'skip', message: `no namespace is labelled ${LABEL_INJECT}=enabled: nothing to dry-run`, hint: `kubectl label namespace NAME ${LABEL_INJECT}=enabled` };
  const r = f.dryRun.response;
  if (!r.ok) return { id, status: 'fail', message: `dry-run pod create in ${f.dryRun.namespace} failed: ${why(r)}`, hint: 'the API server could not call the webhook or it refused the pod; see the control plane\'s logs' };
  const spec = (r.value.spec as Obj | undefined) ?? {};
  const names = [...((spec.initContainers as Obj[] | undefined) ?? []), ...((spec.containers as Obj[] | undefined) ?? [])].map((c) => c.name);
  if (!names.includes(PROXY_CONTAINER_NAME) || !names.includes(INIT_CONTAINER_NAME)) {
    return { id, status: 'fail', message: `dry-run pod create in ${f.dryRun.namespace} came back without ${INIT_CONTAINER_NAME}/${PROXY_CONTAINER_NAME}: the webhook did not inject`, hint: 'check the MutatingWebhookConfiguration\'s namespaceSelector and objectSelector' };
  }
  return { id, status: 'ok', message: `a dry-run pod in ${f.dryRun.namespace} is injected (${INIT_CONTAINER_NAME}, ${PROXY_CONTAINER_NAME})` };
}

/** Opted-in namespaces whose Pod Security level refuses the init container (it adds NET_ADMIN and NET_RAW). */
function podSecurity(f: Facts, o: CheckOptions): CheckResult[] {
  if (!f.namespaces.ok) return [{ id: 'namespaces', status: 'fail', message: `cannot list namespaces: ${why(f.namespaces)}` }];
  const enabled = f.namespaces.value.filter((n) => labelsOf(n)[LABEL_INJECT] === 'enabled' && !isExcluded(nameOf(n), o.namespace));
  if (enabled.length === 0) return [{ id: 'namespaces', status: 'warn', message: `no namespace is labelled ${LABEL_INJECT}=enabled: no pod gets the proxy`, hint: `kubectl label namespace NAME ${LABEL_INJECT}=enabled` }];
  return enabled.map((n): CheckResult => {
    const level = labelsOf(n)[PSA_ENFORCE];
    const id = `namespace ${nameOf(n)}`;
    if (level === 'restricted' || level === 'baseline') {
      return {
        id, status: 'fail',
        message: `Pod Security "${level}" is enforced: it refuses the aigress-init container (NET_ADMIN, NET_RAW, runs as root), so every new pod here is rejected`,
        hint: `kubectl label namespace ${nameOf(n)} ${PSA_ENFORCE}=privileged --overwrite (or exempt the namespace in the PodSecurity admission config)`,
      };
    }
    return { id, status: 'ok', message: `opted in; Pod Security enforce: ${level ?? 'not set (the cluster default applies)'}` };
  });
}

function accepted(o: Obj): { status?: string; reason?: string; message?: string; stale: boolean } {
  const status = (o.status as Obj | undefined) ?? {};
  const c = ((status.conditions as Obj[] | undefined) ?? []).find((x) => x.type === 'Accepted');
  const gen = meta(o).generation;
  const stale = c !== undefined && typeof gen === 'number' && typeof c.observedGeneration === 'number' && c.observedGeneration < gen;
  return { status: c?.status as string | undefined, reason: c?.reason as string | undefined, message: c?.message as string | undefined, stale };
}

function policies(f: Facts, o: CheckOptions): CheckResult[] {
  if (!f.policies.ok) return [{ id: 'policies', status: 'fail', message: `cannot list EgressPolicies: ${why(f.policies)}` }];
  const out: CheckResult[] = [];
  if (f.clusterPolicy.ok) {
    const a = accepted(f.clusterPolicy.value);
    out.push(a.status === 'True'
      ? { id: 'clusteregresspolicy default', status: 'ok', message: 'accepted: it is the cluster default (the chart\'s defaultPolicy is not used)' }
      : { id: 'clusteregresspolicy default', status: 'fail', message: `not accepted (${a.reason ?? 'no status yet'}): ${a.message ?? 'the control plane has not looked at it'}; the previous default stays`, hint: 'aigress policy validate -f on the file you applied' });
  }
  const enabled = new Set(f.namespaces.ok ? f.namespaces.value.filter((n) => labelsOf(n)[LABEL_INJECT] === 'enabled').map(nameOf) : []);
  for (const ns of [...enabled].filter((n) => !isExcluded(n, o.namespace)).sort()) {
    const own = f.policies.value.filter((p) => meta(p).namespace === ns);
    if (own.length === 0) {
      out.push({ id: `policy ${ns}`, status: 'ok', message: `no EgressPolicy: the cluster default applies` });
      continue;
    }
    for (const p of own) {
      const a = accepted(p);
      const id = `policy ${ns}/${nameOf(p)}`;
      if (a.status === 'True' && !a.stale) out.push({ id, status: 'ok', message: 'accepted' });
      else if (a.status === 'True') out.push({ id, status: 'warn', message: 'accepted, but for an older generation: the control plane has not looked at the latest edit yet', hint: 'wait a few seconds; if it stays, see the control plane\'s logs' });
      else out.push({ id, status: 'fail', message: `not accepted (${a.reason ?? 'no status yet'}): ${a.message ?? 'the control plane has not looked at it'}`, hint: `kubectl get egresspolicy -n ${ns} ${nameOf(p)} -o yaml | aigress policy validate -f -` });
    }
  }
  return out;
}

/** The control plane's version: its Deployment's app.kubernetes.io/version label, else its image tag. */
export function controlPlaneVersion(deployment: Obj): string | undefined {
  const label = labelsOf(deployment)['app.kubernetes.io/version'];
  if (label) return label;
  const containers = ((((deployment.spec as Obj | undefined)?.template as Obj | undefined)?.spec as Obj | undefined)?.containers as Obj[] | undefined) ?? [];
  const image = String(containers[0]?.image ?? '');
  const tag = /:([^:/@]+)(@.*)?$/.exec(image)?.[1];
  return tag;
}

/** Proxy version → pods (namespace/name) running it, from each injected pod's aigress.io/status annotation. */
export function proxyVersions(pods: readonly Obj[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const p of pods) {
    const raw = ((meta(p).annotations as Record<string, string> | undefined) ?? {})[ANNOTATION_STATUS];
    if (raw === undefined) continue;
    let v = 'unknown';
    try {
      const s = JSON.parse(raw) as { version?: unknown };
      if (typeof s.version === 'string') v = s.version;
    } catch {
      // a hand-edited annotation: counted as unknown
    }
    const list = out.get(v) ?? [];
    list.push(`${String(meta(p).namespace)}/${nameOf(p)}`);
    out.set(v, list);
  }
  return out;
}

function versionSkew(f: Facts): CheckResult {
  const id = 'proxy-versions';
  if (!f.pods.ok) return { id, status: 'fail', message: `cannot list pods: ${why(f.pods)}` };
  const cp = f.deployment.ok ? controlPlaneVersion(f.deployment.value) : undefined;
  const versions = proxyVersions(f.pods.value);
  const total = [...versions.values()].reduce((n, l) => n + l.length, 0);
  if (total === 0) return { id, status: 'ok', message: 'no injected pods yet' };
  if (!cp) return { id, status: 'skip', message: `${total} injected pods; the control plane's version is unknown` };
  const other = [...versions].filter(([v]) => v !== cp);
  if (other.length === 0) return { id, status: 'ok', message: `all ${total} injected pods run proxy ${cp}, as the control plane` };
  const detail = other.map(([v, pods]) => `${pods.length} on ${v} (e.g. ${pods.slice(0, 3).join(', ')})`).join('; ');
  return { id, status: 'warn', message: `control plane ${cp}; ${detail}`, hint: 'restart them to pick up the current proxy: kubectl rollout restart deployment -n NAMESPACE NAME' };
}

function notInstalled(f: Facts): CheckResult {
  if (f.webhookConfig.ok) return { id: 'existing-install', status: 'fail', message: 'a MutatingWebhookConfiguration aigress already exists: aigress is installed', hint: 'run aigress check (without --pre), or helm upgrade' };
  if (!notFound(f.webhookConfig)) return { id: 'existing-install', status: 'warn', message: `cannot tell whether aigress is installed: ${why(f.webhookConfig)}` };
  return { id: 'existing-install', status: 'ok', message: 'aigress is not installed yet' };
}

/** Every check, in the order they are printed. */
export function evaluate(f: Facts, o: CheckOptions, pre: boolean): CheckResult[] {
  const api = apiServer(f);
  if (api[0]!.status === 'fail') return api;
  if (pre) return [...api, notInstalled(f), ...crds(f, o, true), ...podSecurity(f, o).map((r) => (r.status === 'warn' && r.id === 'namespaces' ? { ...r, status: 'ok' as const, message: `no namespace is labelled ${LABEL_INJECT}=enabled yet` } : r))];
  const ca = caSecret(f, o);
  return [...api, ...crds(f, o, false), controlPlane(f, o), ca.result, webhookBundle(f, ca.cert), dryRun(f), ...podSecurity(f, o), ...policies(f, o), versionSkew(f)];
}

const MARK: Record<Status, string> = { ok: '[ok]  ', warn: '[warn]', fail: '[FAIL]', skip: '[skip]' };

export function formatResults(results: readonly CheckResult[]): string {
  const lines: string[] = [];
  for (const r of results) {
    lines.push(`${MARK[r.status]} ${r.id}: ${r.message}`);
    if (r.hint && r.status !== 'ok') lines.push(`       hint: ${r.hint}`);
  }
  const count = (s: Status): number => results.filter((r) => r.status === s).length;
  lines.push('', `${count('fail') === 0 ? 'check passed' : 'check FAILED'}: ${count('ok')} ok, ${count('warn')} warnings, ${count('fail')} failed, ${count('skip')} skipped`);
  return `${lines.join('\n')}\n`;
}
