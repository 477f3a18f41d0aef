import { describe, expect, it } from 'vitest';
import { compileHostMatcher } from '../../../shared/providers/index.js';
import { peek } from '../../../sidecar/proxy/peek.js';
import { decideRoute, routeLabel } from '../../../sidecar/proxy/route.js';

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
      by: 'name',
      tls: true,
      host: 'generativelanguage.googleapis.com',
      target: { host: 'generativelanguage.googleapis.com', port: 443 },
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

  it('without an original destination, passes plain HTTP through to the port Host names, else 80', () => {
    expect(decideRoute(http('GET / HTTP/1.1\r\nHost: example.org:8080\r\n\r\n'), match, 'passthrough')).toMatchObject({ target: { port: 8080 } });
    expect(decideRoute(http('GET / HTTP/1.1\r\nHost: example.org\r\n\r\n'), match, 'passthrough')).toMatchObject({ target: { port: 80 } });
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

  it('without an original destination, refuses connections it cannot name', () => {
    expect(decideRoute({ kind: 'tls' }, match, 'passthrough')).toMatchObject({ route: 'unmediated' });
    expect(decideRoute({ kind: 'unknown', reason: 'x' }, match, 'passthrough')).toEqual({ route: 'unmediated', reason: 'x' });
    expect(decideRoute(http('GET / HTTP/1.0\r\n\r\n'), match, 'passthrough')).toMatchObject({ route: 'unmediated', http: true });
    expect(decideRoute({ kind: 'silent' }, match, 'passthrough')).toMatchObject({ route: 'unmediated' });
  });
});

describe('decideRoute with the original destination (SO_ORIGINAL_DST)', () => {
  const orig = { address: '10.96.0.1', port: 6443 };

  it('passes unnamed connections through to where they were going: no SNI, server-first, not HTTP, HTTP without Host', () => {
    for (const p of [{ kind: 'tls' } as const, { kind: 'silent' } as const, { kind: 'unknown', reason: 'not TLS or HTTP' } as const, http('GET / HTTP/1.0\r\n\r\n')]) {
      const r = decideRoute(p, match, 'passthrough', orig);
      expect(r).toMatchObject({ route: 'passthrough', by: 'address', target: { host: '10.96.0.1', port: 6443 } });
      expect(routeLabel(r)).toBe('passthrough_address');
    }
  });

  it('dials a named non-AI host at its original address and port, not a re-resolution of the name', () => {
    const r = decideRoute({ kind: 'tls', sni: 'internal.example' }, match, 'passthrough', { address: '192.0.2.7', port: 8443 });
    expect(r).toEqual({ route: 'passthrough', by: 'name', tls: true, host: 'internal.example', target: { host: '192.0.2.7', port: 8443 } });
    expect(routeLabel(r)).toBe('passthrough_name');
  });

  it('still terminates AI hosts (their upstream goes by name)', () => {
    const r = decideRoute({ kind: 'tls', sni: 'api.openai.com' }, match, 'passthrough', { address: '192.0.2.9', port: 443 });
    expect(r.route).toBe('mediated');
    expect(routeLabel(r)).toBe('mediated');
  });

  it('refuses unnamed connections under unmatchedEgress: deny, and never forwards a stalled hello', () => {
    expect(routeLabel(decideRoute({ kind: 'tls' }, match, 'deny', orig))).toBe('refused');
    expect(routeLabel(decideRoute({ kind: 'silent' }, match, 'deny', orig))).toBe('refused');
    expect(decideRoute({ kind: 'stalled' }, match, 'passthrough', orig)).toMatchObject({ route: 'unmediated' });
    expect(decideRoute({ kind: 'unknown', reason: 'big', headTooLarge: true }, match, 'passthrough', orig)).toMatchObject({ status: 431 });
  });
});
