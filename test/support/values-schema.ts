import { PROVIDER_IDS } from '../../shared/policy/types.js';
import { knownPlaceSchema } from '../../shared/regions.js';

// values.schema.json's `defaultPolicy` is the EgressPolicy CRD's spec schema, made stricter for Helm: every object
// that lists its properties is closed (additionalProperties: false: the CRD relies on the API server's strict
// field validation instead), the Kubernetes-only keywords are dropped (Helm's JSON Schema has no CEL), and the
// names the control plane would refuse at start are closed vocabularies here: providers from the catalogue,
// regions from the region table. So `providers: [openaii]` or `regions.allow: [mars]` fails `helm install`.
// UPDATE_GOLDEN=1 npx vitest run test/unit/chart/lint.test.ts rewrites the file from the CRD.

type Node = Record<string, unknown>;
const PROVIDER_PATHS = ['providers[]', 'credentials[].provider', 'metering.prices[].provider'];

export function defaultPolicyValuesSchema(crdSpec: unknown): unknown {
  const walk = (s: unknown, path: string): unknown => {
    if (Array.isArray(s)) return s.map((x) => walk(x, path));
    if (typeof s !== 'object' || s === null) return s;
    const o: Node = {};
    for (const [k, v] of Object.entries(s)) {
      if (k.startsWith('x-kubernetes-') || k === 'default') continue;
      if (k === 'properties') o[k] = Object.fromEntries(Object.entries(v as Node).map(([name, sub]) => [name, walk(sub, path ? `${path}.${name}` : name)]));
      else if (k === 'items') o[k] = walk(v, `${path}[]`);
      else o[k] = walk(v, path);
    }
    if (o.type === 'object' && o.properties && o.additionalProperties === undefined) o.additionalProperties = false;
    if (PROVIDER_PATHS.includes(path)) {
      delete o.pattern;
      o.enum = [...PROVIDER_IDS];
    }
    if (path === 'regions.allow[]') Object.assign(o, knownPlaceSchema());
    if (path === 'providers' || path === 'regions.allow' || path === 'models.allow' || path === 'models.deny') o.uniqueItems = true;
    return o;
  };
  return walk(crdSpec, '');
}
