// spec.credentials: the shape each provider needs, checked with field paths; enforced (not refused) now.
import { describe, expect, it } from 'vitest';
import { validatePolicy } from '../../../shared/policy/validate.js';
import { NOT_ENFORCED_FIELDS } from '../../../shared/policy/enforced.js';

const doc = (credentials: unknown[]) => ({ apiVersion: 'aigress.io/v1alpha1', kind: 'EgressPolicy', metadata: { name: 'p' }, spec: { credentials } });
const issues = (credentials: unknown[]): string[] => {
  const r = validatePolicy(doc(credentials));
  return r.ok ? [] : r.issues.map((i) => `${i.path}: ${i.message}`);
};

describe('spec.credentials', () => {
  it('is enforced: a policy with credentials is accepted', () => {
    expect(NOT_ENFORCED_FIELDS).not.toContain('credentials');
    const r = validatePolicy(doc([
      { provider: 'openai', secretRef: { name: 'openai-key', key: 'apiKey' } },
      { provider: 'azure-openai', azureAuth: 'entra', secretRef: { name: 'azure', key: 'token' } },
      { provider: 'bedrock', secretRef: { name: 'aws', key: 'secretAccessKey' }, accessKeyIdKey: 'accessKeyId', sessionTokenKey: 'sessionToken' },
      { provider: 'vertex-ai', secretRef: { name: 'gcp-sa', key: 'key.json' } },
    ]));
    expect(r.ok).toBe(true);
    if (r.ok) {
      expect(r.policy.spec.credentials[1]).toEqual({ provider: 'azure-openai', azureAuth: 'entra', secretRef: { name: 'azure', key: 'token' } });
      expect(r.policy.spec.credentials[2]).toEqual({ provider: 'bedrock', secretRef: { name: 'aws', key: 'secretAccessKey' }, accessKeyIdKey: 'accessKeyId', sessionTokenKey: 'sessionToken' });
    }
  });

  it.each([
    [[{ provider: 'bedrock', secretRef: { name: 'aws', key: 's' } }], 'spec.credentials[0].accessKeyIdKey: bedrock needs'],
    [[{ provider: 'openai', accessKeyIdKey: 'x', secretRef: { name: 'k', key: 'v' } }], 'spec.credentials[0].accessKeyIdKey: only applies to provider bedrock'],
    [[{ provider: 'openai', azureAuth: 'entra', secretRef: { name: 'k', key: 'v' } }], 'spec.credentials[0].azureAuth: only applies to provider azure-openai'],
    [[{ provider: 'azure-openai', azureAuth: 'oauth', secretRef: { name: 'k', key: 'v' } }], 'spec.credentials[0].azureAuth: must be one of api-key, entra'],
    [[{ provider: 'openai', secretRef: { name: '../etc', key: 'v' } }], 'spec.credentials[0].secretRef.name: must be a Secret name'],
    [[{ provider: 'openai', secretRef: { name: 'k', key: '..' } }], 'spec.credentials[0].secretRef.key: must be a Secret data key'],
    [[{ provider: 'openai', secretRef: { name: 'k', key: 'a/b' } }], 'spec.credentials[0].secretRef.key: must be a Secret data key'],
    [[{ provider: 'openai', secretRef: { name: 'k', key: 'v', namespace: 'other' } }], 'spec.credentials[0].secretRef.namespace: unknown field'],
    [[{ provider: 'openai', secretRef: { name: 'k', key: 'v' }, value: 'sk-inline' }], 'spec.credentials[0].value: unknown field'],
  ])('refuses %j with its field path', (creds, message) => {
    expect(issues(creds).join('\n')).toContain(message);
  });
});
