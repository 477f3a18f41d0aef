import { describe, expect, it } from 'vitest';
import { UserError } from '../../../shared/errors.js';
import { PROXY_DEFAULTS } from '../../../sidecar/proxy/defaults.js';
import { parseProxyFlags } from '../../../sidecar/proxy/flags.js';

describe('--credentials-dir', () => {
  it('is a standalone flag', () => {
    expect(parseProxyFlags({ policy: 'p.yaml', caDir: 'ca', credentialsDir: '/creds' }, PROXY_DEFAULTS).mode).toEqual({
      kind: 'standalone', policyFile: 'p.yaml', caDir: 'ca', credentialsDir: '/creds',
    });
    expect(parseProxyFlags({ policy: 'p.yaml', caDir: 'ca' }, PROXY_DEFAULTS).mode).not.toHaveProperty('credentialsDir');
  });
  it('is refused, naming the flag, in cluster mode or empty', () => {
    const fails = (f: Record<string, string>, re: RegExp): void => {
      let err: unknown;
      try {
        parseProxyFlags(f, PROXY_DEFAULTS);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(UserError);
      expect((err as UserError).message).toMatch(re);
    };
    fails({ controlPlane: 'https://cp:8443', credentialsDir: '/creds' }, /--credentials-dir is for standalone mode/);
    fails({ policy: 'p.yaml', caDir: 'ca', credentialsDir: '' }, /--credentials-dir: must not be empty/);
  });
});
