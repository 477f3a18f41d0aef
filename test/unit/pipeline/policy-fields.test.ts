import { describe, expect, it } from 'vitest';
import { parsePolicy } from '../../../shared/policy/load.js';
import { formatIssues, validatePolicy } from '../../../shared/policy/validate.js';

const doc = (spec: unknown) => ({ apiVersion: 'aigress.io/v1alpha1', kind: 'EgressPolicy', metadata: { name: 'p' }, spec });
const issues = (spec: unknown): string => {
  const r = validatePolicy(doc(spec));
  return r.ok ? '' : formatIssues(r.issues);
};

describe('EgressPolicy: region and metering fields', () => {
  it('accepts groups, global and known regions; names the entry that is neither', () => {
    expect(issues({ regions: { allow: ['eu', 'global', 'eu-central-1', 'swedencentral', 'europe-west4'] } })).toBe('');
    expect(issues({ regions: { allow: ['eu', 'europa'] } })).toBe(
      'spec.regions.allow[1]: unknown region or region group "europa" (groups: eu, us, ca, latam, apac, me, af, cn, global; or an AWS, Google Cloud or Azure region name)',
    );
  });

  it('checks Azure resource regions and matches resource names without case', () => {
    expect(issues({ regions: { azureResources: { prod: 'westeurop' } } })).toBe('spec.regions.azureResources.prod: unknown Azure region "westeurop"');
    const r = validatePolicy(doc({ regions: { allow: ['eu'], azureResources: { 'Contoso-EU': 'swedencentral' } } }));
    expect(r.ok && r.policy.spec.regions.azureResources).toEqual({ 'contoso-eu': 'swedencentral' });
  });

  it('reads spec.metering and fills its defaults', () => {
    const r = validatePolicy(
      doc({ metering: { prices: [{ model: 'my-ft-*', provider: 'openai', input: 3, output: 12, cachedInput: 1.5 }], identityLabels: ['namespace'] } }),
    );
    expect(r.ok && r.policy.spec.metering).toEqual({
      prices: [{ model: 'my-ft-*', provider: 'openai', input: 3, output: 12, cachedInput: 1.5 }],
      modelLabelLimit: 50,
      identityLabels: ['namespace'],
    });
    const none = validatePolicy(doc({}));
    expect(none.ok && none.policy.spec.metering).toBeUndefined();
  });

  it('names every bad metering field', () => {
    expect(issues({ metering: { prices: [{ model: '', input: -1, output: 'cheap' }], modelLabelLimit: 2.5, identityLabels: ['node'], colour: 1 } })).toBe(
      [
        'spec.metering.colour: unknown field (allowed: prices, modelLabelLimit, identityLabels)',
        'spec.metering.prices[0].model: must be a non-empty model name or glob',
        'spec.metering.prices[0].input: must be a non-negative number (USD per million tokens), got -1',
        'spec.metering.prices[0].output: must be a non-negative number (USD per million tokens), got "cheap"',
        'spec.metering.modelLabelLimit: must be an integer from 0 to 1000 (got 2.5)',
        'spec.metering.identityLabels[0]: must be one of namespace, pod, serviceAccount, workload (got "node")',
      ].join('; '),
    );
  });

  it('reports a bad field from a YAML file in one line', () => {
    expect(() => parsePolicy('apiVersion: aigress.io/v1alpha1\nkind: EgressPolicy\nspec:\n  regions: { allow: [mars] }\n', 'policy.yaml')).toThrow(
      /^policy\.yaml: invalid EgressPolicy: spec\.regions\.allow\[0\]: unknown region or region group "mars"/,
    );
  });
});
