// type: transform: body fields by JSONPath and headers, literal or from the pod's identity.
import { describe, expect, it } from 'vitest';
import { validatePolicy } from '../../../../shared/policy/validate.js';
import { filterSetup, send } from './support.js';

const CHAT = '/v1/chat/completions';

describe('transform filter', () => {
  it('forces $.user to the workload, sets a nested field, removes $.metadata and sets/removes headers', async () => {
    const s = filterSetup([{
      type: 'transform', name: 'tag',
      setBodyFields: [{ path: '$.user', fromIdentity: 'workload' }, { path: "$.extra['team-id']", value: 'team-a' }],
      removeBodyFields: ['$.metadata', '$.messages[1]'],
      setHeaders: [{ name: 'X-Pod', fromIdentity: 'pod' }, { name: 'openai-organization', value: 'org-1' }],
      removeHeaders: ['x-debug'],
    }]);
    const body = { model: 'gpt-4o', user: 'spoofed', metadata: { a: 1 }, messages: [{ role: 'user', content: 'a' }, { role: 'user', content: 'b' }] };
    const { verdict, sent, ex } = await send(s, 'api.openai.com', CHAT, body, { 'x-debug': '1' });
    expect(verdict).toEqual({ action: 'continue' });
    expect(JSON.parse(sent)).toEqual({ model: 'gpt-4o', user: 'chat', messages: [{ role: 'user', content: 'a' }], extra: { 'team-id': 'team-a' } });
    expect(ex.request.headers.get('x-pod')).toBe('chat-7d9f-abcde');
    expect(ex.request.headers.get('openai-organization')).toBe('org-1');
    expect(ex.request.headers.has('x-debug')).toBe(false);
    expect(ex.request.headers.get('content-length')).toBe(String(Buffer.byteLength(sent)));
    expect(ex.actions).toContainEqual(expect.objectContaining({ processor: 'tag', action: 'rewrite', found: { body: 4, headers: 3 } }));
  });

  it('changes nothing when there is nothing to change (the body goes byte for byte)', async () => {
    const s = filterSetup([{ type: 'transform', removeBodyFields: ['$.metadata'] }]);
    const raw = '{ "model": "gpt-4o",  "messages": [] }';
    const { ex } = await send(s, 'api.openai.com', CHAT, raw);
    expect(ex.request.body.changed).toBe(false);
    expect(ex.request.body.bytes().toString()).toBe(raw);
  });

  it('a body it must edit but cannot read follows the failure mode: FailClosed → 400 in the provider shape, FailOpen → on', async () => {
    const closed = filterSetup([{ type: 'transform', setBodyFields: [{ path: '$.user', value: 'x' }] }]);
    const r = await send(closed, 'api.openai.com', CHAT, Buffer.from('not json'));
    expect(r.verdict).toMatchObject({ action: 'deny', status: 400, kind: 'bad_request', reason: 'uninspectable_body' });
    const gz = await send(closed, 'api.openai.com', CHAT, { model: 'x' }, { 'content-encoding': 'gzip' });
    expect((gz.verdict as { message: string }).message).toContain('content-encoding gzip');
    const open = filterSetup([{ type: 'transform', failureMode: 'FailOpen', setBodyFields: [{ path: '$.user', value: 'x' }] }]);
    const o = await send(open, 'api.openai.com', CHAT, Buffer.from('not json'));
    expect(o.verdict).toEqual({ action: 'continue' });
    expect(o.ex.actions).toContainEqual(expect.objectContaining({ action: 'failed-open' }));
  });

  it('refuses bad paths and protected headers at validation, naming the field', () => {
    const r = validatePolicy({ apiVersion: 'aigress.io/v1alpha1', kind: 'EgressPolicy', metadata: { name: 'p' }, spec: { filters: [{ type: 'transform', setBodyFields: [{ path: 'user', value: 'x' }], removeHeaders: ['Content-Length'] }] } });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.issues.map((i) => i.path)).toEqual(['spec.filters[0].setBodyFields[0].path', 'spec.filters[0].removeHeaders[0]']);
  });
});
