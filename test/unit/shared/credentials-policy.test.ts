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
    const minted = validatePolicy(doc([
      { provider: 'azure-openai', azureAuth: 'entra', secretRef: { name: 'azure-app', key: 'clientSecret' }, tenantIdKey: 'tenantId', clientIdKey: 'clientId' },
      { provider: 'bedrock', secretRef: { name: 'aws', key: 'secretAccessKey' }, accessKeyIdKey: 'accessKeyId', roleArn: 'arn:aws-us-gov:iam::123456789012:role/team/bedrock', roleSessionName: 'team-a' },
    ]));
    expect(minted.ok && minted.policy.spec.credentials).toEqual([
      { provider: 'azure-openai', azureAuth: 'entra', secretRef: { name: 'azure-app', key: 'clientSecret' }, tenantIdKey: 'tenantId', clientIdKey: 'clientId' },
      { provider: 'bedrock', secretRef: { name: 'aws', key: 'secretAccessKey' }, accessKeyIdKey: 'accessKeyId', roleArn: 'arn:aws-us-gov:iam::123456789012:role/team/bedrock', roleSessionName: 'team-a' },
    ]);
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
    [[{ provider: 'bedrock', secretRef: { name: 'aws', key: 's' }, accessKeyIdKey: 'id', roleArn: 'https://evil.example/role' }], 'spec.credentials[0].roleArn: must be an IAM role ARN'],
    [[{ provider: 'bedrock', secretRef: { name: 'aws', key: 's' }, accessKeyIdKey: 'id', roleArn: 'arn:aws:iam::12345:role/x' }], 'spec.credentials[0].roleArn: must be an IAM role ARN'],
    [[{ provider: 'bedrock', secretRef: { name: 'aws', key: 's' }, accessKeyIdKey: 'id', roleSessionName: 'team-a' }], 'spec.credentials[0].roleSessionName: only applies with roleArn'],
    [[{ provider: 'bedrock', secretRef: { name: 'aws', key: 's' }, accessKeyIdKey: 'id', roleArn: 'arn:aws:iam::123456789012:role/r', roleSessionName: 'a b' }], 'spec.credentials[0].roleSessionName: must be 2-64 characters'],
    [[{ provider: 'openai', secretRef: { name: 'k', key: 'v' }, roleArn: 'arn:aws:iam::123456789012:role/r' }], 'spec.credentials[0].roleArn: only applies to provider bedrock'],
    [[{ provider: 'azure-openai', secretRef: { name: 'k', key: 'v' }, tenantIdKey: 't', clientIdKey: 'c' }], 'spec.credentials[0].tenantIdKey: only applies with azureAuth: entra'],
    [[{ provider: 'azure-openai', azureAuth: 'entra', secretRef: { name: 'k', key: 'v' }, tenantIdKey: 't' }], 'spec.credentials[0].clientIdKey: tenantIdKey and clientIdKey go together'],
    [[{ provider: 'azure-openai', azureAuth: 'entra', secretRef: { name: 'k', key: 'v' }, tenantIdKey: 't', clientIdKey: '../c' }], 'spec.credentials[0].clientIdKey: must be a Secret data key'],
    [[{ provider: 'gemini', secretRef: { name: 'k', key: 'v' }, clientIdKey: 'c' }], 'spec.credentials[0].clientIdKey: only applies to provider azure-openai'],
  ])('refuses %j with its field path', (creds, message) => {
    expect(issues(creds).join('\n')).toContain(message);
  });
});
