import { describe, expect, it } from 'vitest';
import { checkOriginalAddress, createAddressChecker, normalizeAddress } from '../../../sidecar/proxy/passthrough-check.js';

describe('checkOriginalAddress', () => {
  it('matches the dialled address against every address the name resolves to', () => {
    expect(checkOriginalAddress('93.184.215.14', ['2606:2800:21f:cb07:6820:80da:af6b:8b2c', '93.184.215.14'])).toBe('match');
    expect(checkOriginalAddress('162.159.140.245', ['93.184.215.14'])).toBe('mismatch');
    expect(checkOriginalAddress('93.184.215.14', [])).toBe('unresolved');
    expect(checkOriginalAddress('93.184.215.14', undefined)).toBe('unresolved');
  });

  it('compares addresses, not their spellings', () => {
    expect(checkOriginalAddress('::ffff:10.0.0.1', ['10.0.0.1'])).toBe('match');
    expect(checkOriginalAddress('10.0.0.1', ['::FFFF:10.0.0.1'])).toBe('match');
    expect(checkOriginalAddress('2001:DB8:0:0:0:0:0:1', ['2001:db8::1'])).toBe('match');
    expect(checkOriginalAddress('[2001:db8::1]', ['2001:0db8::0001'])).toBe('match');
    expect(checkOriginalAddress('2001:db8::2', ['2001:db8::1'])).toBe('mismatch');
    expect(normalizeAddress('::ffff:a00:1')).toBe('10.0.0.1');
  });
});

describe('createAddressChecker', () => {
  const fakeDns = (answers: Record<string, string[] | Error>) => {
    const calls: string[] = [];
    const lookup = async (host: string): Promise<string[]> => {
      calls.push(host);
      const a = answers[host];
      if (a === undefined) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
      if (a instanceof Error) throw a;
      return [...a];
    };
    return { calls, lookup };
  };

  it('caches a name\'s answer for its TTL, and looks again before it calls a cached answer a mismatch', async () => {
    let t = 0;
    const answers: Record<string, string[]> = { 'example.org': ['10.0.0.1'] };
    const dns = fakeDns(answers);
    const check = createAddressChecker({ lookup: dns.lookup, ttlMs: 1000, now: () => t });
    expect(await check('example.org', '10.0.0.1')).toEqual({ result: 'match', resolved: ['10.0.0.1'] });
    expect(await check('example.org', '10.0.0.1')).toMatchObject({ result: 'match' });
    expect(dns.calls).toEqual(['example.org']);
    // The name moved: the cached answer says mismatch, the fresh one says match.
    answers['example.org'] = ['10.0.0.2'];
    expect(await check('example.org', '10.0.0.2')).toMatchObject({ result: 'match' });
    expect(dns.calls).toHaveLength(2);
    // An address the name has never had is a mismatch, after a fresh lookup.
    expect(await check('example.org', '10.9.9.9')).toEqual({ result: 'mismatch', resolved: ['10.0.0.2'] });
    expect(dns.calls).toHaveLength(3);
    t = 2000; // expired: looked up again even for what would match
    expect(await check('example.org', '10.0.0.2')).toMatchObject({ result: 'match' });
    expect(dns.calls).toHaveLength(4);
  });

  it('counts a name that does not resolve, or resolves too slowly, as unresolved, and never rejects', async () => {
    const dns = fakeDns({ 'broken.example': new Error('EAI_AGAIN') });
    const check = createAddressChecker({ lookup: dns.lookup });
    expect(await check('nowhere.example', '10.0.0.1')).toEqual({ result: 'unresolved', resolved: [] });
    expect(await check('broken.example', '10.0.0.1')).toEqual({ result: 'unresolved', resolved: [] });
    const slow = createAddressChecker({ lookup: () => new Promise(() => {}), timeoutMs: 20 });
    expect(await slow('slow.example', '10.0.0.1')).toEqual({ result: 'unresolved', resolved: [] });
  });

  it('shares one lookup between concurrent checks of a name, and checks no more than maxInflight names at once', async () => {
    const release: Array<() => void> = [];
    const calls: string[] = [];
    const lookup = (host: string): Promise<string[]> =>
      new Promise((r) => {
        calls.push(host);
        release.push(() => r(['10.0.0.1']));
      });
    const check = createAddressChecker({ lookup, maxInflight: 2 });
    const a1 = check('a.example', '10.0.0.1');
    const a2 = check('a.example', '10.0.0.9');
    const b = check('b.example', '10.0.0.1');
    expect(await check('c.example', '10.0.0.1')).toEqual({ result: 'unchecked', resolved: [] });
    expect(calls).toEqual(['a.example', 'b.example']);
    for (const r of release) r();
    expect([(await a1).result, (await a2).result, (await b).result]).toEqual(['match', 'mismatch', 'match']);
    // Once they are done, new names are looked up again.
    const c = check('c.example', '10.0.0.1');
    release[2]!();
    expect((await c).result).toBe('match');
  });

  it('keeps at most maxNames names (the app chooses them)', async () => {
    const answers: Record<string, string[]> = {};
    for (let i = 0; i < 10; i++) answers[`h${i}.example`] = [`10.0.0.${i}`];
    const dns = fakeDns(answers);
    const check = createAddressChecker({ lookup: dns.lookup, maxNames: 3 });
    for (let i = 0; i < 10; i++) await check(`h${i}.example`, `10.0.0.${i}`);
    dns.calls.length = 0;
    for (const i of [7, 8, 9]) await check(`h${i}.example`, `10.0.0.${i}`);
    expect(dns.calls).toEqual([]); // the three newest are cached
    await check('h0.example', '10.0.0.0');
    expect(dns.calls).toEqual(['h0.example']); // the oldest were dropped
  });
});
