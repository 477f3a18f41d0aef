// A filter that throws or misses its deadline is a filter failure too: counted in aigress_filter_failures_total
// as well as aigress_processor_failures_total, once; failures a filter reports itself are not counted again.
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { pipelineOf, type Processor } from '../../../../sidecar/pipeline/index.js';
import { exchange, metric, policy, respond, runRequest, withRegistry } from '../harness.js';
import { JSON_H, filterSetup } from './support.js';

const CHAT = '/v1/chat/completions';
const boom = (): never => {
  throw new Error('bug');
};

describe('filter failures', () => {
  it('a filter that throws counts in aigress_filter_failures_total{filter,mode}, in the request and the response phase', async () => {
    const registry = new Registry();
    const p = policy();
    const req: Processor = { name: 'pii-req', type: 'pii', phase: 'transform', failureMode: 'closed', onRequest: boom };
    const r1 = await runRequest(withRegistry(pipelineOf([req]), registry), exchange(p, 'api.openai.com', CHAT, { model: 'gpt-4o' }));
    expect(r1.verdict).toMatchObject({ action: 'deny', status: 503 });
    expect(await metric(registry, 'aigress_filter_failures_total', { filter: 'pii-req', mode: 'closed' })).toBe(1);
    expect(await metric(registry, 'aigress_processor_failures_total', { processor: 'pii-req', mode: 'closed' })).toBe(1);

    const res: Processor = { name: 'regex-res', type: 'regex', phase: 'transform', failureMode: 'open', onResponse: boom };
    const pipe = withRegistry(pipelineOf([res]), registry);
    const { ex } = await runRequest(pipe, exchange(p, 'api.openai.com', CHAT, { model: 'gpt-4o' }));
    const got = await respond(pipe, ex, 200, JSON_H, [Buffer.from('{"choices":[]}')]);
    expect(got.body.toString()).toBe('{"choices":[]}');
    expect(await metric(registry, 'aigress_filter_failures_total', { filter: 'regex-res', mode: 'open' })).toBe(1);
    expect(await metric(registry, 'aigress_processor_failures_total', { processor: 'regex-res', mode: 'open' })).toBe(1);

    // a step that is not a filter is not a filter failure
    const other: Processor = { name: 'models-x', type: 'models', phase: 'admit', failureMode: 'closed', onRequest: boom };
    await runRequest(withRegistry(pipelineOf([other]), registry), exchange(p, 'api.openai.com', CHAT, { model: 'gpt-4o' }));
    expect(await metric(registry, 'aigress_processor_failures_total', { processor: 'models-x' })).toBe(1);
    expect(await metric(registry, 'aigress_filter_failures_total', { filter: 'models-x' })).toBe(0);
  });

  it('a failure the filter reports itself (a body it cannot read) is counted once, and is no processor failure', async () => {
    const s = filterSetup([{ type: 'pii', name: 'pii', failureMode: 'FailClosed' }]);
    const { verdict } = await runRequest(s.pipeline, exchange(s.p, 'api.openai.com', CHAT, Buffer.from('model=gpt')));
    expect(verdict).toMatchObject({ action: 'deny', status: 400, reason: 'uninspectable_body' });
    expect(await metric(s.registry, 'aigress_filter_failures_total', { filter: 'pii', mode: 'closed' })).toBe(1);
    expect(await metric(s.registry, 'aigress_processor_failures_total', { processor: 'pii' })).toBe(0);
  });

  it('a filter that throws on the response under FailClosed says the request reached the provider', async () => {
    const registry = new Registry();
    const p = policy();
    const res: Processor = { name: 'pii-res', type: 'pii', phase: 'transform', failureMode: 'closed', onResponse: () => ({ body: boom }) };
    const pipe = withRegistry(pipelineOf([res]), registry);
    const { ex } = await runRequest(pipe, exchange(p, 'api.openai.com', CHAT, { model: 'gpt-4o' }));
    const got = await respond(pipe, ex, 200, JSON_H, [Buffer.from('{"choices":[]}')]);
    const out = got.denied?.message ?? '';
    expect(got.denied).toMatchObject({ status: 503, reason: 'processor_failed' });
    expect(out).toContain('policy step pii-res (pii) could not decide (it failed)');
    expect(out).toContain('the request had reached the provider; the rest of its response is withheld');
    expect(out).not.toContain('nothing was sent');
  });
});
