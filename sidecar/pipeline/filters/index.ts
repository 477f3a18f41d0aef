import type { Filter, FilterType } from '../../../shared/policy/filters.js';
import type { PipelineContext } from '../context.js';
import type { PipelineServices, Processor } from '../types.js';
import type { FilterEnv } from './common.js';
import { externalFilter } from './external.js';
import { filterMetrics } from './metrics.js';
import { piiFilter } from './pii.js';
import { promptInjectionFilter } from './prompt-injection.js';
import { regexFilter } from './regex.js';
import { transformFilter } from './transform.js';

// `spec.filters` → processors, in list order, through a small registry keyed by filter type. Each type is one
// file beside this one. Names are unique in a policy the author wrote; default names (`pii-0`) of the cluster
// default and a namespace's policy may meet after the merge, and are numbered apart here.

type Builder<F extends Filter> = (f: F, env: FilterEnv) => Processor;
type Builders = { [T in FilterType]?: Builder<Extract<Filter, { type: T }>> };

export const FILTER_BUILDERS: Builders = {
  pii: piiFilter,
  regex: regexFilter,
  'prompt-injection': promptInjectionFilter,
  transform: transformFilter,
  external: externalFilter,
};

export function buildFilters(ctx: PipelineContext, services: PipelineServices): Processor[] {
  const env: FilterEnv = { ctx, services, metrics: filterMetrics(services.registry) };
  const used = new Set<string>();
  const out: Processor[] = [];
  for (const f of ctx.policy.spec.filters) {
    let name = f.name;
    for (let n = 2; used.has(name); n++) name = `${f.name}-${n}`;
    used.add(name);
    const build = FILTER_BUILDERS[f.type] as Builder<Filter> | undefined;
    // validation accepts only types with a builder; a type without one would be a field not enforced
    if (!build) throw new Error(`filter type ${f.type} has no processor`);
    out.push(build(name === f.name ? f : { ...f, name }, env));
  }
  return out;
}
