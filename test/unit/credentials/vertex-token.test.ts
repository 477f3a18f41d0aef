// Vertex AI access tokens: self-signed JWTs from the service-account key, re-minted before they expire.
import { generateKeyPairSync } from 'node:crypto';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { mintVertexToken, VERTEX_REFRESH_BEFORE_MS, VertexTokenCache } from '../../../shared/credentials/vertex-token.js';

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const KEY = JSON.stringify({ type: 'service_account', client_email: 'a@p.iam.gserviceaccount.com', private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() });
const claims = (t: string): { iat: number; exp: number } => JSON.parse(Buffer.from(t.split('.')[1]!, 'base64url').toString()) as { iat: number; exp: number };

afterEach(() => vi.useRealTimers());

describe('Vertex AI tokens', () => {
  it('are re-minted once less than 20 minutes are left, and reused before', () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const t0 = Date.parse('2026-12-03T10:00:00Z');
    vi.setSystemTime(t0);
    const cache = new VertexTokenCache(() => Date.now());
    const first = cache.mint(KEY);
    expect(first.expiresAt).toBe(t0 + 3_600_000);
    expect(claims(first.token).exp * 1000).toBe(first.expiresAt);
    vi.setSystemTime(first.expiresAt - VERTEX_REFRESH_BEFORE_MS - 60_000);
    expect(cache.mint(KEY)).toBe(first);
    vi.setSystemTime(first.expiresAt - VERTEX_REFRESH_BEFORE_MS + 1000);
    const second = cache.mint(KEY);
    expect(second.token).not.toBe(first.token);
    expect(second.expiresAt).toBeGreaterThan(first.expiresAt);
  });

  it('name what is wrong with a bad key without echoing it', () => {
    expect(() => mintVertexToken('not json')).toThrow('not JSON');
    expect(() => mintVertexToken('{"client_email":"a"}')).toThrow(/client_email and private_key/);
    expect(() => mintVertexToken(JSON.stringify({ type: 'authorized_user', client_email: 'a', private_key: 'x' }))).toThrow(/not service_account/);
    let msg = '';
    try {
      mintVertexToken(JSON.stringify({ client_email: 'a', private_key: 'SECRETPEMGARBAGE' }));
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg).toMatch(/cannot sign/);
    expect(msg).not.toContain('SECRETPEMGARBAGE');
  });
});
