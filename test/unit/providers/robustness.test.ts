// Adapters see whatever apps (or attackers) send: describe() and the usage readers must never throw.
import { describe, expect, it } from 'vitest';
import { ADAPTERS } from '../../../shared/providers/index.js';
import { OPERATIONS } from '../../../shared/providers/types.js';
import { usageReader } from '../../../shared/providers/usage.js';
import { mulberry32 } from '../../support/prng.js';
import { fixture } from './support.js';

const HOSTS: Record<string, string> = {
  openai: 'api.openai.com',
  'azure-openai': 'x.openai.azure.com',
  anthropic: 'api.anthropic.com',
  gemini: 'generativelanguage.googleapis.com',
  'vertex-ai': 'us-central1-aiplatform.googleapis.com',
  bedrock: 'bedrock-runtime.eu-central-1.amazonaws.com',
  mistral: 'api.mistral.ai',
};
const PIECES = ['/', 'v1', 'model', 'models', 'openai', 'deployments', 'projects', 'locations', 'publishers', 'anthropic', 'google', ':generateContent', '%', '%E0%A4%A', '..', '?', '=', '&', 'converse-stream', 'eu.', 'arn:aws:bedrock:::x/', '\u0000', 'é', '//'];
const BODIES = ['', '{', '{"model":', '{"model":{"a":1},"stream":"yes"}', '[1,2]', 'null', '{"model":"' + 'm'.repeat(5000) + '"}', '{"stream":true,"stream_options":null}', '\u00ff\u00fe'];

describe('adapters never throw', () => {
  it('describe(): random paths and bodies give a valid description', () => {
    const rnd = mulberry32(7);
    for (const a of ADAPTERS) {
      for (let i = 0; i < 500; i++) {
        const path = Array.from({ length: 1 + Math.floor(rnd() * 10) }, () => PIECES[Math.floor(rnd() * PIECES.length)]).join('');
        const body = Buffer.from(BODIES[Math.floor(rnd() * BODIES.length)]!);
        const d = a.describe({ host: HOSTS[a.id]!, method: 'POST', path, headers: {}, body }, { azureResources: { x: 'westeurope' } });
        expect(OPERATIONS).toContain(d.operation);
        expect(typeof d.stream).toBe('boolean');
        if (d.model !== undefined) expect(d.model.length).toBeGreaterThan(0);
        if (d.reach !== undefined) expect(d.reach.length).toBeGreaterThan(0);
      }
    }
  });

  it('usage readers: random bytes and truncated fixtures in every content type yield a result, not an exception', () => {
    const rnd = mulberry32(11);
    const samples = [fixture('openai', 'chat-stream-include-usage.sse'), fixture('bedrock', 'converse-stream.eventstream'), fixture('gemini', 'generate.json')];
    const types = ['text/event-stream', 'application/vnd.amazon.eventstream', 'application/json', 'text/plain', ''];
    for (const a of ADAPTERS) {
      const d = a.describe({ host: HOSTS[a.id]!, method: 'POST', path: '/model/x.y/converse-stream', headers: {}, body: Buffer.from('{"model":"m","stream":true}') }, {});
      for (const type of types) {
        for (let i = 0; i < 30; i++) {
          const base = samples[i % samples.length]!;
          const bytes = i % 2 === 0 ? base.subarray(0, Math.floor(rnd() * base.length)) : Buffer.from(Array.from({ length: 64 }, () => Math.floor(rnd() * 256)));
          const r = usageReader(a, d, { status: 200, headers: { 'content-type': type, 'x-amzn-bedrock-input-token-count': '-3' } });
          r.push(bytes);
          expect(typeof r.finish()).toBe('object');
        }
      }
    }
  });
});
