// Where a call is processed, and whether a policy allows it. Pure data and functions: no I/O.
//
// A policy's `spec.regions.allow` lists region groups (eu, us, …) and/or exact cloud regions (eu-central-1,
// europe-west4, swedencentral). A provider adapter describes each call by its *reach*: every place the call may
// be processed, each an exact region, a group (the call may land anywhere in it, e.g. a Bedrock `eu.` inference
// profile or OpenAI's EU endpoint) or `global` (anywhere at all). A call is allowed only when every place in its
// reach is allowed: an exact region by itself or by its group, a group only by that group, `global` only by
// `global`. So listing every EU region one by one still does not admit an `eu.` profile: AWS may add a region
// to it tomorrow.
//
// Groups follow the clouds' own geographies, not legal borders: `eu` is Europe as AWS (eu-*), Google
// (europe-*) and Azure (the Europe geography) draw it, so it includes the UK, Switzerland and Norway. Policies
// that must stay inside the EU/EEA list exact regions instead.

export const REGION_GROUPS = ['eu', 'us', 'ca', 'latam', 'apac', 'me', 'af', 'cn'] as const;
export type RegionGroup = (typeof REGION_GROUPS)[number];

/** The reach of endpoints that may serve a call anywhere in the world. */
export const GLOBAL = 'global';

const AWS_PREFIX: Record<string, RegionGroup> = {
  us: 'us',
  'us-gov': 'us',
  eu: 'eu',
  eusc: 'eu', // AWS European Sovereign Cloud (eusc-de-east-1)
  ca: 'ca',
  sa: 'latam',
  mx: 'latam',
  ap: 'apac',
  me: 'me',
  il: 'me',
  af: 'af',
  cn: 'cn',
};
const AWS_REGION = /^(us-gov|us|eusc|eu|ca|sa|mx|ap|me|il|af|cn)-[a-z]+(?:-[a-z]+)?-\d{1,2}$/;

const GCP_PREFIX: Record<string, RegionGroup> = {
  us: 'us',
  europe: 'eu',
  asia: 'apac',
  australia: 'apac',
  southamerica: 'latam',
  me: 'me',
  africa: 'af',
};
const GCP_REGION = /^(us|europe|northamerica|southamerica|asia|australia|me|africa)-[a-z]+\d{1,2}$/;

/** Azure region names carry no geography in their syntax, so they are listed. */
const AZURE: Record<string, RegionGroup> = {};
const azure = (group: RegionGroup, names: string): void => {
  for (const n of names.split(/\s+/).filter(Boolean)) AZURE[n] = group;
};
azure('eu', `westeurope northeurope francecentral francesouth germanywestcentral germanynorth swedencentral
  swedensouth switzerlandnorth switzerlandwest uksouth ukwest norwayeast norwaywest polandcentral italynorth
  spaincentral austriaeast belgiumcentral denmarkeast`);
azure('us', `eastus eastus2 westus westus2 westus3 centralus northcentralus southcentralus westcentralus
  usgovvirginia usgovarizona usgovtexas usdodcentral usdodeast`);
azure('ca', 'canadacentral canadaeast');
azure('latam', 'brazilsouth brazilsoutheast mexicocentral chilecentral');
azure('apac', `eastasia southeastasia japaneast japanwest koreacentral koreasouth australiaeast australiasoutheast
  australiacentral australiacentral2 centralindia southindia westindia jioindiawest jioindiacentral
  indonesiacentral malaysiawest newzealandnorth taiwannorth`);
azure('me', 'uaenorth uaecentral qatarcentral israelcentral saudiarabiaeast');
azure('af', 'southafricanorth southafricawest');
azure('cn', 'chinaeast chinaeast2 chinaeast3 chinanorth chinanorth2 chinanorth3');

/**
 * The names a policy may list in `spec.regions.allow`, as JSON Schema: the chart's values.schema.json is built
 * from this, so a typo in the chart's defaultPolicy fails `helm install` with the same rule the validator uses.
 */
export function knownPlaceSchema(): { anyOf: Array<{ enum: string[] } | { pattern: string }> } {
  return {
    anyOf: [
      { enum: [...REGION_GROUPS, GLOBAL, ...Object.keys(AZURE)] },
      { pattern: AWS_REGION.source },
      { pattern: GCP_REGION.source },
    ],
  };
}

export function isRegionGroup(name: string): name is RegionGroup {
  return (REGION_GROUPS as readonly string[]).includes(name);
}

/** The group an exact AWS, Google Cloud or Azure region belongs to; undefined for names it does not know. */
export function regionGroup(region: string): RegionGroup | undefined {
  const aws = AWS_REGION.exec(region);
  if (aws) return AWS_PREFIX[aws[1]!];
  const gcp = GCP_REGION.exec(region);
  if (gcp) {
    // North America is split: Montréal and Toronto are Canada, Querétaro is Mexico.
    if (gcp[1] === 'northamerica') return region.startsWith('northamerica-south') ? 'latam' : 'ca';
    return GCP_PREFIX[gcp[1]!];
  }
  return AZURE[region];
}

/** True for names a policy may list in `spec.regions.allow`: a group, `global` or a region this table knows. */
export function isKnownPlace(name: string): boolean {
  return name === GLOBAL || isRegionGroup(name) || regionGroup(name) !== undefined;
}

export interface RegionRules {
  readonly allow: readonly string[];
  readonly unknown: 'deny' | 'allow';
}

export type RegionDecision =
  | { allowed: true }
  | { allowed: false; reason: 'region_not_allowed'; place: string }
  | { allowed: false; reason: 'region_unknown' };

/**
 * Decides a call's region against a policy. `reach` lists every place the call may be processed (empty or
 * undefined: cannot be told). An empty allow list is no region rule: every known place passes.
 */
export function decideRegion(reach: readonly string[] | undefined, rules: RegionRules): RegionDecision {
  if (!reach || reach.length === 0) return rules.unknown === 'allow' ? { allowed: true } : { allowed: false, reason: 'region_unknown' };
  if (rules.allow.length === 0) return { allowed: true };
  for (const place of reach) {
    if (!placeAllowed(place, rules.allow)) return { allowed: false, reason: 'region_not_allowed', place };
  }
  return { allowed: true };
}

function placeAllowed(place: string, allow: readonly string[]): boolean {
  if (allow.includes(place)) return true;
  if (place === GLOBAL || isRegionGroup(place)) return false;
  const group = regionGroup(place);
  return group !== undefined && allow.includes(group);
}
