import type { Registry } from 'prom-client';
import type { ProviderId } from '../../shared/policy/types.js';
import type { PriceTable } from '../../shared/providers/prices.js';

// Model names come from clients, so as metric labels they must be bounded. A name the price catalogue knows
// keeps its own label (up to CATALOGUE_CAP distinct names: catalogue entries are globs, so even they are not a
// closed set); any other name gets its own label only while fewer than `limit` such names have been seen by this
// proxy; past that, and for absurdly long names, the label is `other`. The state lives as long as the metrics
// registry, so a policy reload does not reset it.

export const OTHER_MODEL = 'other';
/** Label for requests whose model cannot be told (e.g. GET /v1/models). */
export const UNKNOWN_MODEL = 'unknown';
export const CATALOGUE_CAP = 500;
const MAX_LABEL_LENGTH = 128;

export class ModelLabeler {
  private readonly catalogued = new Set<string>();
  private readonly others = new Set<string>();
  private limit = 0;
  private prices: PriceTable | undefined;

  /** Applies a (new) policy's limit and catalogue; names already labelled keep their labels. */
  configure(limit: number, prices: PriceTable): void {
    this.limit = limit;
    this.prices = prices;
  }

  label(provider: ProviderId, model: string | undefined, aliases: readonly string[] = []): string {
    if (model === undefined) return UNKNOWN_MODEL;
    if (this.catalogued.has(model) || this.others.has(model)) return model;
    if (model.length > MAX_LABEL_LENGTH) return OTHER_MODEL;
    if (this.prices?.lookup(provider, [model, ...aliases])) {
      if (this.catalogued.size >= CATALOGUE_CAP) return OTHER_MODEL;
      this.catalogued.add(model);
      return model;
    }
    if (this.others.size >= this.limit) return OTHER_MODEL;
    this.others.add(model);
    return model;
  }
}

const byRegistry = new WeakMap<Registry, ModelLabeler>();

export function modelLabeler(registry: Registry): ModelLabeler {
  let l = byRegistry.get(registry);
  if (!l) {
    l = new ModelLabeler();
    byRegistry.set(registry, l);
  }
  return l;
}
