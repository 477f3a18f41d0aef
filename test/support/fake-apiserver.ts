import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import jsonpatch, { type Operation } from 'fast-json-patch';
import { createCA, issueLeaf, loadCA } from '../../shared/pki.js';

// A small, faithful stand-in for kube-apiserver, written from the Kubernetes API reference
// (https://kubernetes.io/docs/reference/using-api/api-concepts/): the real paths, object shapes, Status errors,
// resourceVersions, watch streams (JSON lines, BOOKMARK events when asked, 410 Expired after compaction) and the
// status subresource. It serves only the resources the control plane uses, and says so (404) for the rest;
// anything it does not implement is refused loudly (400/415), never silently ignored.

type Obj = Record<string, unknown> & { metadata?: Meta };
interface Meta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  [k: string]: unknown;
}

interface ResourceType {
  group: string; // '' = core
  version: string;
  plural: string;
  kind: string;
  namespaced: boolean;
  /** Has a /status subresource: main-resource writes ignore status, status writes ignore everything else. */
  statusSubresource: boolean;
  /** Typed (built-in) lists omit kind/apiVersion on items; custom resources keep them. */
  builtin: boolean;
}

const RESOURCES: readonly ResourceType[] = [
  { group: '', version: 'v1', plural: 'namespaces', kind: 'Namespace', namespaced: false, statusSubresource: true, builtin: true },
  { group: '', version: 'v1', plural: 'secrets', kind: 'Secret', namespaced: true, statusSubresource: false, builtin: true },
  { group: '', version: 'v1', plural: 'configmaps', kind: 'ConfigMap', namespaced: true, statusSubresource: false, builtin: true },
  {
    group: 'admissionregistration.k8s.io', version: 'v1', plural: 'mutatingwebhookconfigurations',
    kind: 'MutatingWebhookConfiguration', namespaced: false, statusSubresource: false, builtin: true,
  },
  { group: 'aigress.io', version: 'v1alpha1', plural: 'egresspolicies', kind: 'EgressPolicy', namespaced: true, statusSubresource: true, builtin: false },
  { group: 'aigress.io', version: 'v1alpha1', plural: 'clusteregresspolicies', kind: 'ClusterEgressPolicy', namespaced: false, statusSubresource: true, builtin: false },
  { group: '', version: 'v1', plural: 'pods', kind: 'Pod', namespaced: true, statusSubresource: true, builtin: true },
  { group: 'apps', version: 'v1', plural: 'deployments', kind: 'Deployment', namespaced: true, statusSubresource: true, builtin: true },
  {
    group: 'apiextensions.k8s.io', version: 'v1', plural: 'customresourcedefinitions',
    kind: 'CustomResourceDefinition', namespaced: false, statusSubresource: true, builtin: true,
  },
];

/**
 * Kinds that discovery lists (so clients such as helm can map the kinds a chart renders) but whose objects this
 * server does not keep: every request for them is a 404, as for any resource it does not serve.
 */
const DISCOVERY_ONLY: ReadonlyArray<Pick<ResourceType, 'group' | 'version' | 'plural' | 'kind' | 'namespaced'>> = [
  { group: '', version: 'v1', plural: 'serviceaccounts', kind: 'ServiceAccount', namespaced: true },
  { group: '', version: 'v1', plural: 'services', kind: 'Service', namespaced: true },
  { group: 'policy', version: 'v1', plural: 'poddisruptionbudgets', kind: 'PodDisruptionBudget', namespaced: true },
  { group: 'rbac.authorization.k8s.io', version: 'v1', plural: 'clusterroles', kind: 'ClusterRole', namespaced: false },
  { group: 'rbac.authorization.k8s.io', version: 'v1', plural: 'clusterrolebindings', kind: 'ClusterRoleBinding', namespaced: false },
  { group: 'rbac.authorization.k8s.io', version: 'v1', plural: 'roles', kind: 'Role', namespaced: true },
  { group: 'rbac.authorization.k8s.io', version: 'v1', plural: 'rolebindings', kind: 'RoleBinding', namespaced: true },
  { group: 'networking.k8s.io', version: 'v1', plural: 'networkpolicies', kind: 'NetworkPolicy', namespaced: true },
  { group: 'monitoring.coreos.com', version: 'v1', plural: 'podmonitors', kind: 'PodMonitor', namespaced: true },
  { group: 'monitoring.coreos.com', version: 'v1', plural: 'servicemonitors', kind: 'ServiceMonitor', namespaced: true },
  { group: 'cert-manager.io', version: 'v1', plural: 'certificates', kind: 'Certificate', namespaced: true },
  { group: 'cert-manager.io', version: 'v1', plural: 'issuers', kind: 'Issuer', namespaced: true },
];

/**
 * What the API server's admission chain does to a Pod on create: the tests plug in the webhook they want to
 * play (the real one behind a harness, or a failing one). Absent: no mutating webhook is registered.
 */
export type PodAdmission = (pod: Obj, namespace: string) => Promise<{ allowed: true; pod: Obj } | { allowed: false; code: number; message: string }>;

const apiVersionOf = (r: ResourceType): string => (r.group ? `${r.group}/${r.version}` : r.version);

/** A ServiceAccount token the fake TokenReview API knows, as the kubelet would have projected it. */
export interface FakeToken {
  namespace: string;
  serviceAccount: string;
  audiences: string[];
  podName?: string;
  podUid?: string;
  /** ms since the epoch; expired tokens fail review. */
  expiresAt?: number;
}

export interface RequestRecord {
  method: string;
  path: string;
  query: string;
  contentType: string | undefined;
}

interface Event {
  rv: number;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  resource: ResourceType;
  object: Obj;
}

interface Watcher {
  resource: ResourceType;
  namespace: string | undefined;
  res: ServerResponse;
  bookmarks: boolean;
  /** A dead connection as the client sees it: nothing more is written, and it is never ended. */
  stalled: boolean;
  close(): void;
}

export interface FakeApiServerOptions {
  /** Bearer token the control plane must present (its own ServiceAccount token). */
  adminToken?: string;
  /** How often an open watch with allowWatchBookmarks=true gets a BOOKMARK (real servers: about a minute). */
  bookmarkIntervalMs?: number;
  /** GET /version's gitVersion (default v1.31.0). */
  gitVersion?: string;
  /** Resources (plurals) this server does not serve, as when their CRD is not installed: every path is 404. */
  without?: string[];
}

class HttpError extends Error {
  constructor(
    readonly status: Obj,
    readonly code: number,
  ) {
    super(String(status.message));
  }
}

function statusObject(code: number, reason: string, message: string, details?: Obj): Obj {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, ...(details ? { details } : {}), code };
}
const fail = (code: number, reason: string, message: string, details?: Obj): HttpError =>
  new HttpError(statusObject(code, reason, message, details), code);

const clone = <T>(v: T): T => structuredClone(v);
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** RFC 7386 JSON merge patch. */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObj(patch)) return clone(patch);
  const out: Obj = isObj(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

export class FakeApiServer {
  readonly adminToken: string;
  /** Every request, in order, for tests that check what the control plane asked for (and what it did not). */
  readonly requests: RequestRecord[] = [];
  private readonly objects = new Map<string, Obj>();
  private readonly history: Event[] = [];
  private readonly watchers = new Set<Watcher>();
  private readonly tokens = new Map<string, FakeToken>();
  private rv = 100;
  /** Watches asking for a resourceVersion older than this get 410 Expired, as after etcd compaction. */
  private compactedBelow = 0;
  private readonly bookmarkIntervalMs: number;
  private faults: Array<{ method: string; pathPrefix: string; code: number; times: number }> = [];
  /** Watches that resume from a resourceVersion are answered 410 Expired (etcd compacting without pause). */
  private expiring = false;
  /** New watches are never answered and open ones go silent. */
  private stalling = false;
  private readonly unanswered = new Set<ServerResponse>();
  private port = 0;

  private constructor(
    private readonly server: Server,
    readonly caPem: string,
    opts: FakeApiServerOptions,
  ) {
    this.adminToken = opts.adminToken ?? 'control-plane-token';
    this.bookmarkIntervalMs = opts.bookmarkIntervalMs ?? 1000;
    this.gitVersion = opts.gitVersion ?? 'v1.31.0';
    this.without = opts.without ?? [];
  }

  private readonly without: string[];

  private readonly gitVersion: string;
  /** Admission for Pod creates (with and without dryRun=All); see PodAdmission. */
  podAdmission: PodAdmission | undefined;

  static async start(opts: FakeApiServerOptions = {}): Promise<FakeApiServer> {
    const ca = await createCA('fake kube-apiserver CA');
    const leaf = await issueLeaf(await loadCA(ca.certPem, ca.keyPem), { dnsNames: ['localhost', 'kubernetes.default.svc'] });
    const holder: { self?: FakeApiServer } = {};
    const server = createServer({ cert: leaf.certPem, key: leaf.keyPem }, (req, res) => {
      holder.self!.handle(req, res);
    });
    const self = new FakeApiServer(server, ca.certPem, opts);
    holder.self = self;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return self;
  }

  /** Server URL; connect with TLS server name `localhost` (the certificate has no IP SAN, like many real ones). */
  get url(): string {
    return `https://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    for (const w of [...this.watchers]) w.close();
    for (const res of this.unanswered) res.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  // ---- test controls -------------------------------------------------------------------------------------

  addToken(token: string, t: FakeToken): void {
    this.tokens.set(token, t);
  }

  /** Creates or replaces an object as a client would (resourceVersion, uid, generation handled), emitting a watch event. */
  put(apiVersion: string, plural: string, obj: Obj): Obj {
    const r = this.resourceFor(apiVersion, plural);
    const meta = obj.metadata ?? {};
    const existing = this.objects.get(this.key(r, meta.namespace, meta.name!));
    return existing ? this.update(r, meta.namespace, meta.name!, { ...clone(obj), metadata: { ...meta, resourceVersion: undefined } }, false)
      : this.create(r, meta.namespace, clone(obj));
  }

  /** Writes an object's status as its controller would (the kubelet for pods, the Deployment controller…). */
  putStatus(apiVersion: string, plural: string, namespace: string | undefined, name: string, status: unknown): Obj {
    const r = this.resourceFor(apiVersion, plural);
    return this.update(r, namespace, name, { ...this.mustGet(r, namespace, name), status } as Obj, true);
  }

  get(apiVersion: string, plural: string, namespace: string | undefined, name: string): Obj | undefined {
    const o = this.objects.get(this.key(this.resourceFor(apiVersion, plural), namespace, name));
    return o ? clone(o) : undefined;
  }

  remove(apiVersion: string, plural: string, namespace: string | undefined, name: string): void {
    this.delete(this.resourceFor(apiVersion, plural), namespace, name);
  }

  /** Forgets watch history up to now: watches resuming from an older resourceVersion get 410 Expired. */
  compact(): void {
    this.compactedBelow = this.rv + 1;
    this.history.length = 0;
  }

  /** Ends every open watch, as an apiserver does at its request timeout or on restart. */
  closeWatches(): void {
    for (const w of [...this.watchers]) w.close();
  }

  get openWatches(): number {
    return this.watchers.size;
  }

  /** A 410 storm: while on, every watch from a resourceVersion gets 410 Expired at once (lists still work). */
  expireWatches(on: boolean): void {
    this.expiring = on;
  }

  /**
   * A stalled watch: while on, open watches get nothing more (no event, no bookmark, no end) and new watch
   * requests are accepted but never answered, as through a dead connection or a hung API server. Turning it
   * off serves new watches again; the stalled ones stay dead until the client gives up on them.
   */
  stallWatches(on: boolean): void {
    this.stalling = on;
    if (on) for (const w of this.watchers) w.stalled = true;
  }

  /** Watch requests accepted and never answered (stalled before their headers). */
  get unansweredWatches(): number {
    return this.unanswered.size;
  }

  /** Unreachable: stops listening and drops every connection (clients get connection refused). */
  async goAway(): Promise<void> {
    this.port = (this.server.address() as AddressInfo).port;
    for (const w of [...this.watchers]) w.close();
    for (const res of this.unanswered) res.destroy();
    this.unanswered.clear();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Listens again on the same port after goAway(). */
  async comeBack(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(this.port, '127.0.0.1', resolve));
  }

  /** The next `times` requests whose path starts with `pathPrefix` fail with `code` (500, 503, 429…). */
  injectFault(method: string, pathPrefix: string, code: number, times = 1): void {
    this.faults.push({ method, pathPrefix, code, times });
  }

  // ---- HTTP --------------------------------------------------------------------------------------------------

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'https://localhost');
    this.requests.push({ method: req.method ?? '', path: url.pathname, query: url.search, contentType: req.headers['content-type'] });
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      try {
        if (req.headers.authorization !== `Bearer ${this.adminToken}`) throw fail(401, 'Unauthorized', 'Unauthorized');
        const fault = this.faults.find((f) => f.method === req.method && url.pathname.startsWith(f.pathPrefix) && f.times > 0);
        if (fault) {
          fault.times--;
          throw fail(fault.code, fault.code === 429 ? 'TooManyRequests' : 'InternalError', `injected fault ${fault.code}`);
        }
        const body = Buffer.concat(chunks).toString('utf8');
        this.route(req, res, url, body);
      } catch (err) {
        const e = err instanceof HttpError ? err : fail(500, 'InternalError', (err as Error).message);
        if (!res.headersSent) {
          res.writeHead(e.code, { 'content-type': 'application/json' });
          res.end(JSON.stringify(e.status));
        } else res.end();
      }
    });
  }

  private route(req: IncomingMessage, res: ServerResponse, url: URL, body: string): void {
    const parts = url.pathname.split('/').filter(Boolean);
    const method = req.method ?? 'GET';
    if (parts[0] === 'apis' && parts[1] === 'authentication.k8s.io' && parts[2] === 'v1' && parts[3] === 'tokenreviews' && parts.length === 4) {
      if (method !== 'POST') throw fail(405, 'MethodNotAllowed', `the server does not allow this method on the requested resource`);
      return this.send(res, 201, this.tokenReview(parseJson(body)));
    }
    if (url.pathname === '/version') {
      if (method !== 'GET') throw fail(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
      const [, major, minor] = /^v(\d+)\.(\d+)/.exec(this.gitVersion) ?? [];
      return this.send(res, 200, { major, minor, gitVersion: this.gitVersion, platform: 'linux/amd64' });
    }
    const discovery = this.discovery(parts);
    if (discovery) {
      if (method !== 'GET') throw fail(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
      return this.send(res, 200, discovery);
    }
    const p = this.parsePath(parts);
    const q = url.searchParams;
    const dryRun = q.get('dryRun');
    if (dryRun !== null) {
      // Only dry-run Pod creates are played (what `aigress check` sends); anything else would be a silent no-op.
      if (dryRun !== 'All') throw fail(400, 'BadRequest', `Invalid dry run value: ${dryRun}`);
      if (method !== 'POST' || p.r.plural !== 'pods' || p.name !== undefined) throw fail(400, 'BadRequest', 'fake apiserver: dryRun is implemented for pod creates only');
    }
    if (method === 'POST' && p.r.plural === 'pods' && p.name === undefined) {
      const pod = parseJson(body);
      this.checkBody(p.r, pod, p.namespace);
      void this.admitPod(res, p.r, p.namespace!, pod, dryRun === 'All');
      return;
    }
    for (const k of ['labelSelector', 'fieldSelector', 'limit', 'continue']) {
      if (q.has(k)) throw fail(400, 'BadRequest', `fake apiserver: query parameter ${k} is not implemented`);
    }
    const { r, namespace, name, sub } = p;
    if (sub !== undefined && (sub !== 'status' || !r.statusSubresource)) throw notFound();
    const watch = q.get('watch') === 'true' || q.get('watch') === '1';
    switch (method) {
      case 'GET':
        if (name === undefined) {
          if (watch) return this.watch(res, r, namespace, q);
          return this.send(res, 200, this.list(r, namespace));
        }
        return this.send(res, 200, this.mustGet(r, namespace, name));
      case 'POST': {
        if (name !== undefined) throw fail(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
        const obj = parseJson(body);
        this.checkBody(r, obj, namespace);
        return this.send(res, 201, this.create(r, namespace, obj));
      }
      case 'PUT': {
        if (name === undefined) throw fail(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
        const obj = parseJson(body);
        this.checkBody(r, obj, namespace);
        if (obj.metadata?.name !== name) {
          throw fail(400, 'BadRequest', `the name of the object (${String(obj.metadata?.name)}) does not match the name on the URL (${name})`);
        }
        return this.send(res, 200, this.update(r, namespace, name, obj, sub === 'status'));
      }
      case 'PATCH': {
        if (name === undefined) throw fail(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
        return this.send(res, 200, this.patch(r, namespace, name, req.headers['content-type'], body, sub === 'status'));
      }
      case 'DELETE':
        if (name === undefined) throw fail(405, 'MethodNotAllowed', 'fake apiserver: deletecollection is not implemented');
        return this.send(res, 200, this.delete(r, namespace, name));
      default:
        throw fail(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
    }
  }

  /**
   * Discovery (/api, /apis, /api/v1, /apis/{group}/{version}) for the resources this server serves, in the
   * unaggregated v1 shapes: what clients such as helm's `lookup` read before their first request.
   */
  private discovery(parts: string[]): Obj | undefined {
    const served = [...RESOURCES.filter((r) => !this.without.includes(r.plural)), ...DISCOVERY_ONLY.map((r) => ({ ...r, statusSubresource: false }))];
    const resourceList = (group: string, version: string): Obj => ({
      kind: 'APIResourceList', apiVersion: 'v1', groupVersion: group ? `${group}/${version}` : version,
      resources: served.filter((r) => r.group === group && r.version === version).flatMap((r) => [
        { name: r.plural, singularName: r.kind.toLowerCase(), namespaced: r.namespaced, kind: r.kind, verbs: ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'] },
        ...(r.statusSubresource ? [{ name: `${r.plural}/status`, singularName: '', namespaced: r.namespaced, kind: r.kind, verbs: ['get', 'patch', 'update'] }] : []),
      ]),
    });
    if (parts.length === 1 && parts[0] === 'api') return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [] };
    if (parts.length === 2 && parts[0] === 'api' && parts[1] === 'v1') return resourceList('', 'v1');
    if (parts.length === 1 && parts[0] === 'apis') {
      const groups = [...new Set(served.filter((r) => r.group !== '').map((r) => `${r.group}/${r.version}`))].map((gv) => {
        const [name, version] = gv.split('/') as [string, string];
        return { name, versions: [{ groupVersion: gv, version }], preferredVersion: { groupVersion: gv, version } };
      });
      return { kind: 'APIGroupList', apiVersion: 'v1', groups };
    }
    if (parts.length === 3 && parts[0] === 'apis' && served.some((r) => r.group === parts[1] && r.version === parts[2])) return resourceList(parts[1]!, parts[2]!);
    return undefined;
  }

  /** Pod create through admission; with dryRun the result is returned and nothing is stored. */
  private async admitPod(res: ServerResponse, r: ResourceType, namespace: string, pod: Obj, dryRun: boolean): Promise<void> {
    try {
      let admitted = pod;
      if (this.podAdmission) {
        const v = await this.podAdmission(clone(pod), namespace);
        if (!v.allowed) throw fail(v.code, v.code === 500 ? 'InternalError' : 'Forbidden', v.message);
        admitted = v.pod;
      }
      if (dryRun) {
        const name = admitted.metadata?.name ?? `${admitted.metadata?.generateName ?? ''}dryrun`;
        return this.send(res, 201, { ...clone(admitted), kind: 'Pod', apiVersion: 'v1', metadata: { ...admitted.metadata, name, namespace, uid: randomUUID() } });
      }
      this.send(res, 201, this.create(r, namespace, admitted));
    } catch (err) {
      const e = err instanceof HttpError ? err : fail(500, 'InternalError', (err as Error).message);
      res.writeHead(e.code, { 'content-type': 'application/json' });
      res.end(JSON.stringify(e.status));
    }
  }

  private send(res: ServerResponse, code: number, obj: Obj): void {
    res.writeHead(code, { 'content-type': 'application/json' });
    res.end(JSON.stringify(obj));
  }

  /** `/api/v1/...` and `/apis/{group}/{version}/...`, namespaced or cluster-wide, with an optional subresource. */
  private parsePath(parts: string[]): { r: ResourceType; namespace?: string; name?: string; sub?: string } {
    let group: string;
    let rest: string[];
    let version: string;
    if (parts[0] === 'api' && parts[1]) {
      group = '';
      version = parts[1];
      rest = parts.slice(2);
    } else if (parts[0] === 'apis' && parts[1] && parts[2]) {
      group = parts[1];
      version = parts[2];
      rest = parts.slice(3);
    } else throw notFound();
    let namespace: string | undefined;
    // `namespaces/{ns}/{plural}…` is a namespaced path; `namespaces` and `namespaces/{name}[/status]` are Namespace itself.
    if (rest[0] === 'namespaces' && rest.length >= 3 && !(group === '' && rest.length === 3 && rest[2] === 'status')) {
      namespace = rest[1];
      rest = rest.slice(2);
    }
    const [plural, name, sub, ...extra] = rest;
    const r = RESOURCES.find((x) => x.group === group && x.version === version && x.plural === plural && !this.without.includes(x.plural));
    if (!r || extra.length > 0) throw notFound();
    if (namespace !== undefined && !r.namespaced) throw notFound();
    if (namespace === undefined && r.namespaced && name !== undefined) throw notFound();
    return { r, namespace, name, sub };
  }

  private resourceFor(apiVersion: string, plural: string): ResourceType {
    const r = RESOURCES.find((x) => apiVersionOf(x) === apiVersion && x.plural === plural);
    if (!r) throw new Error(`fake apiserver: unknown resource ${apiVersion} ${plural}`);
    return r;
  }

  private key(r: ResourceType, namespace: string | undefined, name: string): string {
    return `${apiVersionOf(r)}/${r.plural}/${r.namespaced ? (namespace ?? '') : ''}/${name}`;
  }

  private checkBody(r: ResourceType, obj: Obj, namespace: string | undefined): void {
    if (obj.kind !== undefined && obj.kind !== r.kind) {
      throw fail(400, 'BadRequest', `the API version in the data (${String(obj.apiVersion)}) does not match the expected API version (${apiVersionOf(r)})`);
    }
    if (obj.apiVersion !== undefined && obj.apiVersion !== apiVersionOf(r)) {
      throw fail(400, 'BadRequest', `the API version in the data (${String(obj.apiVersion)}) does not match the expected API version (${apiVersionOf(r)})`);
    }
    const ns = obj.metadata?.namespace;
    if (r.namespaced && ns !== undefined && ns !== namespace) {
      throw fail(400, 'BadRequest', 'the namespace of the provided object does not match the namespace sent on the request');
    }
  }

  private mustGet(r: ResourceType, namespace: string | undefined, name: string): Obj {
    const o = this.objects.get(this.key(r, namespace, name));
    if (!o) throw notFound(r, name);
    return clone(o);
  }

  private list(r: ResourceType, namespace: string | undefined): Obj {
    const items = [...this.objects.values()]
      .filter((o) => this.isOf(o, r) && (namespace === undefined || o.metadata?.namespace === namespace))
      .sort((a, b) => `${a.metadata?.namespace}/${a.metadata?.name}`.localeCompare(`${b.metadata?.namespace}/${b.metadata?.name}`))
      .map((o) => {
        const c = clone(o);
        if (r.builtin) {
          delete c.kind;
          delete c.apiVersion;
        }
        return c;
      });
    return { kind: `${r.kind}List`, apiVersion: apiVersionOf(r), metadata: { resourceVersion: String(this.rv) }, items };
  }

  private isOf(o: Obj, r: ResourceType): boolean {
    return o.kind === r.kind && o.apiVersion === apiVersionOf(r);
  }

  private create(r: ResourceType, namespace: string | undefined, obj: Obj): Obj {
    const meta: Meta = { ...(obj.metadata ?? {}) };
    if (!meta.name && meta.generateName) meta.name = meta.generateName + randomUUID().slice(0, 5);
    if (!meta.name) throw fail(422, 'Invalid', `${r.kind} "" is invalid: metadata.name: Required value: name or generateName is required`);
    if (r.namespaced) {
      if (!namespace) throw fail(400, 'BadRequest', 'the namespace of the object must be set');
      meta.namespace = namespace;
    } else delete meta.namespace;
    const k = this.key(r, namespace, meta.name);
    if (this.objects.has(k)) {
      throw fail(409, 'AlreadyExists', `${r.plural}${r.group ? '.' + r.group : ''} "${meta.name}" already exists`, {
        name: meta.name, ...(r.group ? { group: r.group } : {}), kind: r.plural,
      });
    }
    if (meta.resourceVersion) throw fail(400, 'BadRequest', 'resourceVersion should not be set on objects to be created');
    const stored: Obj = { ...obj, kind: r.kind, apiVersion: apiVersionOf(r) };
    if (r.kind === 'Secret') normalizeSecret(stored);
    if (r.kind === 'Namespace') stored.status = { phase: 'Active' };
    if (r.statusSubresource && r.kind !== 'Namespace') delete stored.status; // status is written through /status only
    stored.metadata = {
      ...meta,
      uid: randomUUID(),
      resourceVersion: String(++this.rv),
      generation: 1,
      creationTimestamp: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
    };
    this.objects.set(k, stored);
    this.emit('ADDED', r, stored);
    return clone(stored);
  }

  private update(r: ResourceType, namespace: string | undefined, name: string, obj: Obj, statusOnly: boolean): Obj {
    const k = this.key(r, namespace, name);
    const cur = this.objects.get(k);
    if (!cur) throw notFound(r, name);
    const want = obj.metadata?.resourceVersion;
    if (want !== undefined && want !== cur.metadata!.resourceVersion) {
      throw fail(409, 'Conflict', `Operation cannot be fulfilled on ${r.plural}${r.group ? '.' + r.group : ''} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
        { name, ...(r.group ? { group: r.group } : {}), kind: r.plural });
    }
    let next: Obj;
    if (statusOnly) {
      next = { ...clone(cur), status: clone(obj.status) };
    } else {
      next = { ...clone(obj), kind: r.kind, apiVersion: apiVersionOf(r) };
      if (r.statusSubresource) next.status = clone(cur.status);
      if (r.kind === 'Secret') normalizeSecret(next);
      const m = cur.metadata!;
      next.metadata = {
        ...(obj.metadata ?? {}),
        name: m.name, namespace: m.namespace, uid: m.uid, creationTimestamp: m.creationTimestamp, generation: m.generation,
      };
      if (!r.namespaced) delete next.metadata.namespace;
      // metadata.generation counts spec changes only (status and metadata edits leave it alone).
      if (JSON.stringify(specOf(next)) !== JSON.stringify(specOf(cur))) next.metadata.generation = (m.generation ?? 1) + 1;
    }
    if (next.status === undefined) delete next.status;
    if (JSON.stringify(next) === JSON.stringify(cur)) return clone(cur); // no-op writes do not bump resourceVersion
    next.metadata!.resourceVersion = String(++this.rv);
    this.objects.set(k, next);
    this.emit('MODIFIED', r, next);
    return clone(next);
  }

  private patch(r: ResourceType, namespace: string | undefined, name: string, contentType: string | undefined, body: string, statusOnly: boolean): Obj {
    const cur = this.mustGet(r, namespace, name);
    const type = (contentType ?? '').split(';')[0]!.trim();
    let next: Obj;
    if (type === 'application/json-patch+json') {
      const ops = JSON.parse(body) as Operation[];
      if (!Array.isArray(ops)) throw fail(400, 'BadRequest', 'json: cannot unmarshal object into Go value of type jsonpatch.Patch');
      try {
        next = jsonpatch.applyPatch(cur, ops, true, false).newDocument;
      } catch (err) {
        throw fail(422, 'Invalid', `the server rejected our request due to an error in our request: ${(err as Error).message.split('\n')[0]}`);
      }
    } else if (type === 'application/merge-patch+json') {
      next = mergePatch(cur, parseJson(body)) as Obj;
    } else {
      throw fail(415, 'UnsupportedMediaType', `fake apiserver: patch type ${JSON.stringify(type)} is not implemented (json-patch and merge-patch are)`);
    }
    const rv = next.metadata?.resourceVersion;
    // A patch that sets metadata.resourceVersion is an optimistic-concurrency precondition; otherwise unconditional.
    const meta = { ...(next.metadata ?? {}), resourceVersion: rv === cur.metadata?.resourceVersion ? undefined : rv };
    return this.update(r, namespace, name, { ...next, metadata: meta }, statusOnly);
  }

  private delete(r: ResourceType, namespace: string | undefined, name: string): Obj {
    const k = this.key(r, namespace, name);
    const cur = this.objects.get(k);
    if (!cur) throw notFound(r, name);
    this.objects.delete(k);
    const gone: Obj = { ...clone(cur), metadata: { ...cur.metadata, resourceVersion: String(++this.rv) } };
    this.emit('DELETED', r, gone);
    return gone;
  }

  private emit(type: Event['type'], r: ResourceType, object: Obj): void {
    const ev: Event = { rv: this.rv, type, resource: r, object: clone(object) };
    this.history.push(ev);
    for (const w of this.watchers) this.deliver(w, ev);
  }

  private deliver(w: Watcher, ev: Event): void {
    if (ev.resource !== w.resource) return;
    if (w.namespace !== undefined && ev.object.metadata?.namespace !== w.namespace) return;
    if (w.stalled) return;
    w.res.write(JSON.stringify({ type: ev.type, object: ev.object }) + '\n');
  }

  private watch(res: ServerResponse, r: ResourceType, namespace: string | undefined, q: URLSearchParams): void {
    const rvParam = q.get('resourceVersion') ?? '';
    const timeoutSeconds = q.get('timeoutSeconds');
    if (rvParam !== '' && rvParam !== '0' && !/^\d+$/.test(rvParam)) {
      throw fail(400, 'BadRequest', `resourceVersion: Invalid value: "${rvParam}": must be a non-negative integer`);
    }
    if (this.stalling) {
      this.unanswered.add(res);
      res.on('close', () => this.unanswered.delete(res));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    const from = rvParam === '' || rvParam === '0' ? undefined : Number(rvParam);
    if (from !== undefined && (from < this.compactedBelow - 1 || this.expiring)) {
      // Watch from a compacted revision: a 200 stream carrying one ERROR event with a 410 Status, then the end.
      res.end(JSON.stringify({ type: 'ERROR', object: statusObject(410, 'Expired', `too old resource version: ${from} (${this.compactedBelow - 1})`) }) + '\n');
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    let bookmarkTimer: NodeJS.Timeout | undefined;
    const w: Watcher = {
      resource: r,
      namespace,
      res,
      bookmarks: q.get('allowWatchBookmarks') === 'true',
      stalled: false,
      close: () => {
        if (!this.watchers.delete(w)) return;
        clearTimeout(timer);
        clearInterval(bookmarkTimer);
        res.end();
      },
    };
    if (from === undefined) {
      // No resourceVersion: synthetic ADDED events for the current state, then changes.
      for (const o of this.objects.values()) {
        if (this.isOf(o, r) && (namespace === undefined || o.metadata?.namespace === namespace)) {
          res.write(JSON.stringify({ type: 'ADDED', object: o }) + '\n');
        }
      }
    } else {
      for (const ev of this.history) if (ev.rv > from) this.deliver(w, ev);
    }
    this.watchers.add(w);
    res.on('close', () => w.close());
    if (timeoutSeconds) timer = setTimeout(() => !w.stalled && w.close(), Number(timeoutSeconds) * 1000);
    if (w.bookmarks) {
      bookmarkTimer = setInterval(() => {
        if (w.stalled) return;
        res.write(JSON.stringify({
          type: 'BOOKMARK',
          object: { kind: r.kind, apiVersion: apiVersionOf(r), metadata: { resourceVersion: String(this.rv) } },
        }) + '\n');
      }, this.bookmarkIntervalMs);
    }
  }

  /** authentication.k8s.io/v1 TokenReview, as the apiserver answers it for bound ServiceAccount tokens. */
  private tokenReview(body: Obj): Obj {
    if (body.kind !== 'TokenReview' || body.apiVersion !== 'authentication.k8s.io/v1') {
      throw fail(400, 'BadRequest', `the API version in the data (${String(body.apiVersion)}) does not match the expected API version (authentication.k8s.io/v1)`);
    }
    const spec = isObj(body.spec) ? body.spec : {};
    const token = typeof spec.token === 'string' ? spec.token : '';
    const wanted = Array.isArray(spec.audiences) ? (spec.audiences as string[]) : [];
    const review = (status: Obj): Obj => ({
      kind: 'TokenReview',
      apiVersion: 'authentication.k8s.io/v1',
      metadata: {},
      spec: { token, ...(wanted.length ? { audiences: wanted } : {}) },
      status,
    });
    const t = this.tokens.get(token);
    if (!t) return review({ user: {}, error: '[invalid bearer token, service account token has been invalidated]' });
    if (t.expiresAt !== undefined && t.expiresAt < Date.now()) return review({ user: {}, error: '[invalid bearer token, service account token has expired]' });
    // With no audiences in the spec the apiserver checks against its own (its issuer); our tokens are never for it.
    const audiences = wanted.length > 0 ? wanted.filter((a) => t.audiences.includes(a)) : [];
    if (audiences.length === 0) {
      return review({ user: {}, error: `[invalid bearer token, token audiences ${JSON.stringify(t.audiences)} is invalid for the target audiences ${JSON.stringify(wanted.length ? wanted : ['https://kubernetes.default.svc.cluster.local'])}]` });
    }
    const extra: Record<string, string[]> = {};
    if (t.podName) extra['authentication.kubernetes.io/pod-name'] = [t.podName];
    if (t.podUid) extra['authentication.kubernetes.io/pod-uid'] = [t.podUid];
    return review({
      authenticated: true,
      user: {
        username: `system:serviceaccount:${t.namespace}:${t.serviceAccount}`,
        uid: randomUUID(),
        groups: ['system:serviceaccounts', `system:serviceaccounts:${t.namespace}`, 'system:authenticated'],
        extra,
      },
      audiences,
    });
  }
}

function parseJson(body: string): Obj {
  try {
    const v: unknown = JSON.parse(body);
    if (isObj(v)) return v;
  } catch {
    // fall through
  }
  throw fail(400, 'BadRequest', 'the object provided is unrecognized (must be a JSON object)');
}

function notFound(r?: ResourceType, name?: string): HttpError {
  if (!r || name === undefined) return fail(404, 'NotFound', 'the server could not find the requested resource');
  return fail(404, 'NotFound', `${r.plural}${r.group ? '.' + r.group : ''} "${name}" not found`, {
    name, ...(r.group ? { group: r.group } : {}), kind: r.plural,
  });
}

function specOf(o: Obj): unknown {
  const { metadata: _m, status: _s, ...rest } = o;
  return rest;
}

/** Secrets: stringData is write-only and merged into data (base64); data values must be valid base64. */
function normalizeSecret(o: Obj): void {
  const data: Record<string, string> = isObj(o.data) ? { ...(o.data as Record<string, string>) } : {};
  for (const [k, v] of Object.entries(data)) {
    if (typeof v !== 'string' || Buffer.from(v, 'base64').toString('base64') !== v) {
      throw fail(400, 'BadRequest', `Secret in version "v1" cannot be handled as a Secret: illegal base64 data at data[${JSON.stringify(k)}]`);
    }
  }
  if (isObj(o.stringData)) {
    for (const [k, v] of Object.entries(o.stringData)) data[k] = Buffer.from(String(v)).toString('base64');
  }
  delete o.stringData;
  o.data = data;
  o.type ??= 'Opaque';
}
