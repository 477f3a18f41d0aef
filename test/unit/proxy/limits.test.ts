import { describe, expect, it } from 'vitest';
import { parseProblem, RateGuard } from '../../../sidecar/proxy/limits.js';

describe('RateGuard', () => {
  it('allows the burst at once, then only what the refill rate gives back', () => {
    let t = 0;
    const g = new RateGuard(3, 10, () => t);
    expect([g.take(), g.take(), g.take(), g.take()]).toEqual([true, true, true, false]);
    t = 50; // half a token back
    expect(g.take()).toBe(false);
    t = 150; // one more token (10 a second), not more
    expect([g.take(), g.take()]).toEqual([true, false]);
    t = 10_000; // refilled, but never above the burst
    expect([g.take(), g.take(), g.take(), g.take()]).toEqual([true, true, true, false]);
  });
});

describe('parseProblem', () => {
  it('answers what a client can act on, naming the cause', () => {
    expect(parseProblem({ code: 'HPE_CHUNK_EXTENSIONS_OVERFLOW' }).status).toBe(413);
    expect(parseProblem({ code: 'HPE_HEADER_OVERFLOW' }).status).toBe(431);
    expect(parseProblem({ code: 'ERR_HTTP_REQUEST_TIMEOUT' }).status).toBe(408);
    expect(parseProblem({ code: 'HPE_INVALID_TRANSFER_ENCODING', reason: 'Invalid `Transfer-Encoding` header value' })).toEqual({
      status: 400,
      message: 'aigress: malformed HTTP request (HPE_INVALID_TRANSFER_ENCODING): Invalid `Transfer-Encoding` header value',
    });
    expect(parseProblem({}).message).toBe('aigress: malformed HTTP request (parse error)');
  });
});
