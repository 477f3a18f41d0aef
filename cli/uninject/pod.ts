import { ANNOTATION_STATUS, CA_BUNDLE_DIR, INIT_CONTAINER_NAME, PROXY_CONTAINER_NAME } from '../../shared/constants.js';
import { isObj, type Obj } from '../../shared/json.js';
import { CA_BUNDLE_PATH, CA_ENV_NAMES, JAVA_ENV_NAME, JAVA_TRUST_FLAGS } from '../../webhook/inject/env.js';
import { CA_VOLUME, INIT_RUN_VOLUME, TOKEN_VOLUME } from '../../webhook/inject/template.js';

// uninject(pod): the exact inverse of inject (webhook/inject/inject.ts) on what it adds, pure. inject records what
// it added in the aigress.io/status annotation (containers, volumes); the rest it adds in recognisable places:
// the read-only CA mount and the env entries appended at the end of each app container it wired, and its trust
// flags appended to an existing JAVA_TOOL_OPTIONS. A list or map inject had to create is removed when it ends up
// empty again. What inject cannot have added (a container's own SSL_CERT_FILE) is never touched.

export interface UninjectResult {
  pod: Obj;
  changed: boolean;
}

interface Status {
  initContainers: string[];
  containers: string[];
  volumes: string[];
  /** Pod annotations injection added. */
  annotations: string[];
}

function readStatus(annotations: unknown): Status {
  const fallback: Status = {
    initContainers: [INIT_CONTAINER_NAME, PROXY_CONTAINER_NAME],
    containers: [PROXY_CONTAINER_NAME],
    volumes: [CA_VOLUME, TOKEN_VOLUME, INIT_RUN_VOLUME],
    annotations: [],
  };
  const raw = isObj(annotations) ? annotations[ANNOTATION_STATUS] : undefined;
  if (typeof raw !== 'string') return fallback;
  try {
    const s = JSON.parse(raw) as Partial<Status>;
    const names = (v: unknown, d: string[]): string[] => (Array.isArray(v) && v.every((x) => typeof x === 'string') ? v : d);
    return {
      initContainers: names(s.initContainers, fallback.initContainers),
      containers: names(s.containers, fallback.containers),
      volumes: names(s.volumes, fallback.volumes),
      annotations: names(s.annotations, fallback.annotations),
    };
  } catch {
    return fallback;
  }
}

const isCaMount = (m: unknown): boolean => isObj(m) && m.name === CA_VOLUME && m.mountPath === CA_BUNDLE_DIR && m.readOnly === true;

/** Removes `key` from `o` when its value is an empty list or map (one inject created). */
function dropEmpty(o: Obj, key: string): void {
  const v = o[key];
  if ((Array.isArray(v) && v.length === 0) || (isObj(v) && Object.keys(v).length === 0)) delete o[key];
}

/** Env entries inject appends: the CA variables (each only when absent) then JAVA_TOOL_OPTIONS (when absent). */
function isAppendedEnv(e: unknown): boolean {
  if (!isObj(e) || e.valueFrom !== undefined || Object.keys(e).length !== 2) return false;
  if (e.name === JAVA_ENV_NAME) return e.value === JAVA_TRUST_FLAGS;
  return (CA_ENV_NAMES as readonly string[]).includes(String(e.name)) && e.value === CA_BUNDLE_PATH;
}

function unwireContainer(c: Obj): void {
  const mounts = Array.isArray(c.volumeMounts) ? (c.volumeMounts as unknown[]) : [];
  const at = mounts.findLastIndex(isCaMount);
  if (at < 0) return; // inject wires a container by giving it this mount: without it, inject did not touch it
  mounts.splice(at, 1);
  dropEmpty(c, 'volumeMounts');
  if (!Array.isArray(c.env)) return;
  const env = c.env as unknown[];
  // The appended run is at the end, in inject's order; each name at most once.
  const order = [...CA_ENV_NAMES, JAVA_ENV_NAME];
  let cut = env.length;
  let next = order.length;
  while (cut > 0 && isAppendedEnv(env[cut - 1])) {
    const k = order.indexOf(String((env[cut - 1] as Obj).name));
    if (k >= next) break;
    next = k;
    cut--;
  }
  env.splice(cut);
  // An existing JAVA_TOOL_OPTIONS got the flags appended after a space (or as its whole value when it had none).
  const j = env.map((e) => (isObj(e) ? e.name : undefined)).lastIndexOf(JAVA_ENV_NAME);
  const java = j >= 0 ? (env[j] as Obj) : undefined;
  if (java && typeof java.value === 'string' && java.valueFrom === undefined) {
    if (java.value.endsWith(` ${JAVA_TRUST_FLAGS}`)) java.value = java.value.slice(0, -(JAVA_TRUST_FLAGS.length + 1));
    else if (java.value === JAVA_TRUST_FLAGS) delete java.value;
  }
  dropEmpty(c, 'env');
}

/** The pod (or pod template) without aigress; `changed` false when it carried nothing of aigress's. */
export function uninjectPod(input: Obj): UninjectResult {
  const pod = structuredClone(input);
  const meta = isObj(pod.metadata) ? pod.metadata : undefined;
  const spec = isObj(pod.spec) ? pod.spec : undefined;
  const injected = (list: unknown, names: readonly string[]): boolean => Array.isArray(list) && list.some((c) => isObj(c) && names.includes(String(c.name)));
  const hasStatus = isObj(meta?.annotations) && (meta.annotations as Obj)[ANNOTATION_STATUS] !== undefined;
  if (!spec || (!hasStatus && !injected(spec.initContainers, [INIT_CONTAINER_NAME, PROXY_CONTAINER_NAME]) && !injected(spec.containers, [PROXY_CONTAINER_NAME]))) {
    return { pod: input, changed: false };
  }
  const status = readStatus(meta?.annotations);
  if (meta && isObj(meta.annotations)) {
    delete meta.annotations[ANNOTATION_STATUS];
    for (const a of status.annotations) delete meta.annotations[a];
    dropEmpty(meta, 'annotations');
    dropEmpty(pod, 'metadata');
  }
  const keep = (list: string, names: readonly string[]): void => {
    if (!Array.isArray(spec[list])) return;
    spec[list] = (spec[list] as unknown[]).filter((c) => !(isObj(c) && names.includes(String(c.name))));
    dropEmpty(spec, list);
  };
  keep('initContainers', status.initContainers);
  keep('containers', status.containers);
  keep('volumes', status.volumes);
  for (const list of ['initContainers', 'containers']) {
    if (Array.isArray(spec[list])) for (const c of spec[list] as unknown[]) if (isObj(c)) unwireContainer(c);
  }
  return { pod, changed: true };
}
