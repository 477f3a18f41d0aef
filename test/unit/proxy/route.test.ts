import { describe, expect, it } from 'vitest';
import { compileHostMatcher } from '../../../shared/providers/index.js';
import { peek } from '../../../sidecar/proxy/peek.js';
import { decideRoute } from '../../../sidecar/proxy/route.js';

const match = compileHostMatcher(['openai', 'anthropic']);
const http = (s: string) => {
  const r = peek(Buffer.from(s, 'latin1'));
  if (r.kind === 'more') throw new Error('incomplete');
  return r;
};

describe('decideRoute', () => {
  it('mediates TLS to a provider host of the policy', () => {
    const r = decideRoute({ kind: 'tls', sni: 'api.openai.com' }, match, 'passthrough');
    expect(r).toMatchObject({ route: 'mediated', tls: true, host: 'api.openai.com' });
    expect(r.route === 'mediated' && r.adapter.id).toBe('openai');
  });

  it('passes through a provider the policy does not list, like any other host', () => {
    expect(decideRoute({ kind: 'tls', sni: 'generativelanguage.googleapis.com' }, match, 'passthrough')).toEqual({
      route: 'passthrough',
      tls: true,
      host: 'generativelanguage.googleapis.com',
      port: 443,
    });
  });

  it('denies other hosts when unmatchedEgress is deny, on TLS and plain HTTP', () => {
    expect(decideRoute({ kind: 'tls', sni: 'example.org' }, match, 'deny')).toMatchObject({ route: 'denied', tls: true });
    expect(decideRoute(http('GET / HTTP/1.1\r\nHost: example.org\r\n\r\n'), match, 'deny')).toMatchObject({ route: 'denied', tls: false });
  });

  it('mediates plain HTTP to a provider host (TLS is originated upstream)', () => {
    expect(decideRoute(http('POST /v1/messages HTTP/1.1\r\nHost: api.anthropic.com\r\n\r\n'), match, 'deny')).toMatchObject({
      route: 'mediated',
      tls: false,
      host: 'api.anthropic.com',
    });
  });

  it('passes plain HTTP through to the port Host names, else 80', () => {
    expect(decideRoute(http('GET / HTTP/1.1\r\nHost: example.org:8080\r\n\r\n'), match, 'passthrough')).toMatchObject({ port: 8080 });
    expect(decideRoute(http('GET / HTTP/1.1\r\nHost: example.org\r\n\r\n'), match, 'passthrough')).toMatchObject({ port: 80 });
  });

  it('refuses CONNECT and targets that contradict Host, even with passthrough', () => {
    expect(decideRoute(http('CONNECT api.openai.com:443 HTTP/1.1\r\nHost: api.openai.com:443\r\n\r\n'), match, 'passthrough')).toMatchObject({
      route: 'denied',
      reason: 'CONNECT is not allowed',
    });
    expect(decideRoute(http('GET http://api.openai.com/v1 HTTP/1.1\r\nHost: example.org\r\n\r\n'), match, 'passthrough')).toMatchObject({
      route: 'denied',
    });
  });

  it('leaves connections it cannot name unmediated', () => {
    expect(decideRoute({ kind: 'tls' }, match, 'passthrough')).toMatchObject({ route: 'unmediated' });
    expect(decideRoute({ kind: 'unknown', reason: 'x' }, match, 'passthrough')).toEqual({ route: 'unmediated', reason: 'x' });
    expect(decideRoute(http('GET / HTTP/1.0\r\n\r\n'), match, 'passthrough')).toMatchObject({ route: 'unmediated', http: true });
  });
});
