import { describe, expect, it } from 'vitest';
import { exchange, metric, policy, runRequest, setup } from './harness.js';

const BEDROCK_EU = 'bedrock-runtime.eu-central-1.amazonaws.com';
const BEDROCK_US = 'bedrock-runtime.us-east-1.amazonaws.com';

describe('describe processor', () => {
  it('records the facts the proxy counts and logs by', async () => {
    const { pipeline, policy: p } = setup();
    const { ex } = await runRequest(pipeline, exchange(p, 'api.openai.com', '/v1/chat/completions', { model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: 'secret prompt' }] }));
    expect(ex.facts).toMatchObject({ provider: 'openai', operation: 'chat', model: 'gpt-4o', modelLabel: 'gpt-4o', region: 'us', stream: true });
    expect(JSON.stringify(ex.facts)).not.toContain('secret prompt');
    expect(ex.described?.operation).toBe('chat');
  });
  it('shows the reach in the facts when it is more than the region', async () => {
    const { pipeline, policy: p } = setup();
    const { ex } = await runRequest(pipeline, exchange(p, BEDROCK_EU, '/model/eu.anthropic.claude-sonnet-4-20250514-v1:0/converse'));
    expect(ex.facts).toMatchObject({ region: 'eu-central-1', regionReach: 'eu-central-1,eu', model: 'anthropic.claude-sonnet-4-20250514-v1:0' });
  });
});

describe('regions processor', () => {
  const eu = policy({ regions: { allow: ['eu'] } });

  it('answers 451 in Bedrock’s error shape for a US region, naming the rule', async () => {
    const { pipeline, registry } = setup(eu);
    const { verdict, ex } = await runRequest(pipeline, exchange(eu, BEDROCK_US, '/model/anthropic.claude-3-haiku-20240307-v1:0/converse'));
    expect(verdict).toEqual({
      action: 'deny',
      kind: 'region',
      reason: 'region_not_allowed',
      status: 451,
      message: 'aigress: region "us-east-1" is not allowed by policy team-a/default (allowed: eu)',
    });
    const res = ex.adapter.errorResponse('region', 451, (verdict as { message: string }).message);
    expect(res.status).toBe(451);
    expect(res.headers['x-amzn-errortype']).toBe('AccessDeniedException');
    expect(JSON.parse(res.body)).toEqual({ message: 'aigress: region "us-east-1" is not allowed by policy team-a/default (allowed: eu)' });
    expect(ex.facts).toMatchObject({ decision: 'deny', denyReason: 'region_not_allowed' });
    expect(await metric(registry, 'aigress_denials_total', { provider: 'bedrock', reason: 'region_not_allowed' })).toBe(1);
  });

  it('answers in OpenAI’s shape for api.openai.com (US) and lets eu.api.openai.com through', async () => {
    const { pipeline } = setup(eu);
    const denied = await runRequest(pipeline, exchange(eu, 'api.openai.com', '/v1/chat/completions', { model: 'gpt-4o' }));
    expect(denied.verdict).toMatchObject({ action: 'deny', status: 451 });
    const body = JSON.parse(denied.ex.adapter.errorResponse('region', 451, (denied.verdict as { message: string }).message).body);
    expect(body).toEqual({
      error: { message: 'aigress: region "us" is not allowed by policy team-a/default (allowed: eu)', type: 'permission_error', param: null, code: 'aigress_region' },
    });
    expect((await runRequest(pipeline, exchange(eu, 'eu.api.openai.com', '/v1/chat/completions', { model: 'gpt-4o' }))).verdict).toEqual({ action: 'continue' });
  });

  it('admits an EU inference profile and refuses a global one, saying where the call may go', async () => {
    const { pipeline } = setup(eu);
    expect((await runRequest(pipeline, exchange(eu, BEDROCK_EU, '/model/eu.anthropic.claude-sonnet-4-20250514-v1:0/converse'))).verdict.action).toBe('continue');
    const { verdict } = await runRequest(pipeline, exchange(eu, BEDROCK_EU, '/model/global.anthropic.claude-sonnet-4-5-20250929-v1:0/converse'));
    expect(verdict).toMatchObject({ action: 'deny', status: 451 });
    expect((verdict as { message: string }).message).toBe(
      'aigress: region "global" via Bedrock eu-central-1 with inference profile "global." is not allowed by policy team-a/default (allowed: eu; this call may be served in: eu-central-1, global)',
    );
  });

  it('denies a region it cannot tell, explaining why, when unknown regions are denied', async () => {
    const p = policy({ regions: { allow: ['eu'], unknown: 'deny', azureResources: { 'Contoso-EU': 'swedencentral' } } });
    const { pipeline, registry } = setup(p);
    expect((await runRequest(pipeline, exchange(p, 'contoso-eu.openai.azure.com', '/openai/v1/chat/completions', { model: 'gpt-4o' }))).verdict.action).toBe('continue');
    const { verdict } = await runRequest(pipeline, exchange(p, 'other.openai.azure.com', '/openai/v1/chat/completions', { model: 'gpt-4o' }));
    expect(verdict).toEqual({
      action: 'deny',
      kind: 'region',
      reason: 'region_unknown',
      status: 451,
      message:
        'aigress: the region of this call cannot be determined (Azure OpenAI resource "other" is not listed in spec.regions.azureResources) and policy team-a/default denies unknown regions (spec.regions.unknown: deny)',
    });
    expect(await metric(registry, 'aigress_denials_total', { provider: 'azure-openai', reason: 'region_unknown' })).toBe(1);
  });

  it('lets everything through without a region rule', async () => {
    const p = policy();
    const { pipeline } = setup(p);
    expect((await runRequest(pipeline, exchange(p, 'other.openai.azure.com', '/openai/v1/chat/completions', { model: 'gpt-4o' }))).verdict.action).toBe('continue');
    expect((await runRequest(pipeline, exchange(p, BEDROCK_US, '/model/x.y/converse'))).verdict.action).toBe('continue');
  });
});

describe('models processor', () => {
  const p = policy({ models: { allow: ['gpt-4o*', 'claude-*', 'gemini-2.5-*'], deny: ['gpt-4o-mini*'] } });

  it('allows listed models, on every provider, through aliases too', async () => {
    const { pipeline } = setup(p);
    const ok = [
      exchange(p, 'api.openai.com', '/v1/chat/completions', { model: 'gpt-4o' }),
      exchange(p, 'api.anthropic.com', '/v1/messages', { model: 'claude-sonnet-4-5' }),
      exchange(p, BEDROCK_EU, '/model/eu.anthropic.claude-sonnet-4-20250514-v1:0/converse'),
      exchange(p, 'generativelanguage.googleapis.com', '/v1beta/models/gemini-2.5-flash:generateContent'),
      exchange(p, 'api.openai.com', '/v1/models', '', { method: 'GET' }),
    ];
    for (const ex of ok) expect((await runRequest(pipeline, ex)).verdict, ex.request.path).toEqual({ action: 'continue' });
  });

  it('answers 403 for a denied model (deny wins over allow) in the provider’s shape', async () => {
    const { pipeline, registry } = setup(p);
    const { verdict, ex } = await runRequest(pipeline, exchange(p, 'api.openai.com', '/v1/chat/completions', { model: 'gpt-4o-mini' }));
    expect(verdict).toEqual({
      action: 'deny',
      kind: 'policy',
      reason: 'model_denied',
      status: 403,
      message: 'aigress: model "gpt-4o-mini" is denied by policy team-a/default (deny: gpt-4o-mini*)',
    });
    expect(JSON.parse(ex.adapter.errorResponse('policy', 403, 'm').body).error.type).toBe('permission_error');
    expect(await metric(registry, 'aigress_denials_total', { provider: 'openai', reason: 'model_denied' })).toBe(1);
  });

  it('answers 403 for a model outside the allow list, in Anthropic’s shape', async () => {
    const sonnetOnly = policy({ models: { allow: ['claude-sonnet-*'] } });
    const { pipeline } = setup(sonnetOnly);
    const { verdict, ex } = await runRequest(pipeline, exchange(sonnetOnly, 'api.anthropic.com', '/v1/messages', { model: 'claude-opus-4-1' }));
    const message = 'aigress: model "claude-opus-4-1" is not allowed by policy team-a/default (allowed: claude-sonnet-*)';
    expect(verdict).toEqual({ action: 'deny', kind: 'policy', status: 403, reason: 'model_not_allowed', message });
    expect(ex.facts.denyReason).toBe('model_not_allowed');
    expect(JSON.parse(ex.adapter.errorResponse('policy', 403, message).body)).toEqual({ type: 'error', error: { type: 'permission_error', message } });
    const llama = await runRequest(pipeline, exchange(sonnetOnly, BEDROCK_EU, '/model/meta.llama3-70b-instruct-v1:0/converse'));
    expect(llama.verdict).toMatchObject({ status: 403 });
  });

  it('fails closed on a chat request whose model cannot be read', async () => {
    const { pipeline } = setup(p);
    const { verdict } = await runRequest(pipeline, exchange(p, 'api.openai.com', '/v1/chat/completions', 'not json'));
    expect(verdict).toMatchObject({
      status: 403,
      message: 'aigress: the model of this chat request cannot be determined and policy team-a/default allows only listed models (allowed: gpt-4o*, claude-*, gemini-2.5-*)',
    });
  });

  it('runs after the region rule: a request both rules deny is a region denial', async () => {
    const both = policy({ regions: { allow: ['eu'] }, models: { deny: ['*'] } });
    const { pipeline } = setup(both);
    expect((await runRequest(pipeline, exchange(both, 'api.openai.com', '/v1/chat/completions', { model: 'gpt-4o' }))).verdict).toMatchObject({ status: 451 });
  });
});
