import { describe, expect, it } from 'vitest';
import { compileGlobs } from '../../../shared/glob.js';
import { decideRegion, GLOBAL, isKnownPlace, regionGroup } from '../../../shared/regions.js';

describe('regionGroup', () => {
  it.each([
    ['eu-central-1', 'eu'],
    ['eu-west-2', 'eu'],
    ['eusc-de-east-1', 'eu'],
    ['europe-west4', 'eu'],
    ['westeurope', 'eu'],
    ['swedencentral', 'eu'],
    ['uksouth', 'eu'],
    ['us-east-1', 'us'],
    ['us-gov-west-1', 'us'],
    ['us-central1', 'us'],
    ['eastus2', 'us'],
    ['ca-central-1', 'ca'],
    ['northamerica-northeast1', 'ca'],
    ['northamerica-south1', 'latam'],
    ['sa-east-1', 'latam'],
    ['mx-central-1', 'latam'],
    ['brazilsouth', 'latam'],
    ['ap-northeast-1', 'apac'],
    ['asia-southeast1', 'apac'],
    ['australia-southeast1', 'apac'],
    ['japaneast', 'apac'],
    ['me-central-1', 'me'],
    ['il-central-1', 'me'],
    ['me-west1', 'me'],
    ['uaenorth', 'me'],
    ['af-south-1', 'af'],
    ['africa-south1', 'af'],
    ['southafricanorth', 'af'],
    ['cn-north-1', 'cn'],
  ])('%s → %s', (region, group) => {
    expect(regionGroup(region)).toBe(group);
  });

  it('knows no group for names that are not regions', () => {
    for (const n of ['eu', 'global', 'moon-base-1', 'europe', 'eastus9', '']) expect(regionGroup(n)).toBeUndefined();
  });

  it('accepts groups, global and known regions as policy entries, nothing else', () => {
    expect(['eu', 'apac', GLOBAL, 'eu-central-1', 'westeurope'].every(isKnownPlace)).toBe(true);
    expect(['euu', 'Europe', 'eu-central'].some(isKnownPlace)).toBe(false);
  });
});

describe('decideRegion', () => {
  const eu = { allow: ['eu'], unknown: 'deny' as const };
  it('allows an exact region through its group or by name', () => {
    expect(decideRegion(['eu-central-1'], eu)).toEqual({ allowed: true });
    expect(decideRegion(['swedencentral'], { allow: ['swedencentral'], unknown: 'deny' })).toEqual({ allowed: true });
    expect(decideRegion(['us-east-1'], eu)).toEqual({ allowed: false, reason: 'region_not_allowed', place: 'us-east-1' });
  });
  it('requires every place in the reach to be allowed and names the first that is not', () => {
    expect(decideRegion(['eu-central-1', 'eu'], eu)).toEqual({ allowed: true });
    expect(decideRegion(['eu-central-1', 'us'], eu)).toEqual({ allowed: false, reason: 'region_not_allowed', place: 'us' });
  });
  it('admits a group only by the group itself, and global only by global', () => {
    const regions = { allow: ['eu-central-1', 'eu-west-1', 'eu-west-3', 'eu-north-1'], unknown: 'allow' as const };
    expect(decideRegion(['eu'], regions)).toMatchObject({ allowed: false, place: 'eu' });
    expect(decideRegion([GLOBAL], { allow: ['eu', 'us', 'apac'], unknown: 'allow' })).toMatchObject({ allowed: false, place: GLOBAL });
    expect(decideRegion([GLOBAL], { allow: [GLOBAL], unknown: 'deny' })).toEqual({ allowed: true });
  });
  it('judges unknown regions by spec.regions.unknown', () => {
    expect(decideRegion(undefined, eu)).toEqual({ allowed: false, reason: 'region_unknown' });
    expect(decideRegion([], { allow: ['eu'], unknown: 'allow' })).toEqual({ allowed: true });
  });
  it('has no region rule when the allow list is empty', () => {
    expect(decideRegion(['us-east-1'], { allow: [], unknown: 'deny' })).toEqual({ allowed: true });
    expect(decideRegion(undefined, { allow: [], unknown: 'deny' })).toEqual({ allowed: false, reason: 'region_unknown' });
  });
  it('does not let an unknown region name pass through a group', () => {
    expect(decideRegion(['mars-north-1'], eu)).toMatchObject({ allowed: false, place: 'mars-north-1' });
  });
});

describe('compileGlobs', () => {
  it('matches * and ? without case, treats every other character literally', () => {
    const m = compileGlobs(['gpt-4o*', 'claude-?-haiku', 'anthropic.claude-3-5-sonnet-20240620-v1:0']);
    expect(['gpt-4o', 'GPT-4o-mini', 'claude-3-haiku', 'anthropic.claude-3-5-sonnet-20240620-v1:0'].every(m)).toBe(true);
    expect(['gpt-4', 'xgpt-4o', 'claude-35-haiku', 'anthropicXclaude-3-5-sonnet-20240620-v1:0'].some(m)).toBe(false);
    expect(compileGlobs(['a.b'])('aXb')).toBe(false);
    expect(compileGlobs([])('anything')).toBe(false);
  });
});
