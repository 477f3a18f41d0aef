import { describe, expect, it } from 'vitest';
import { UserError } from '../../../shared/errors.js';
import { controlPlaneSettings } from '../../../webhook/control-plane-flags.js';

const inPod = { KUBERNETES_SERVICE_HOST: '10.96.0.1' };

describe('control plane settings for aigress webhook', () => {
  it('is off without a cluster to talk to (development), on in a pod or with --kubeconfig', () => {
    expect(controlPlaneSettings({}, {}, 'aigress-system')).toBeUndefined();
    expect(controlPlaneSettings({}, inPod, 'aigress-system')).toEqual({
      kubeconfig: undefined,
      caSource: { kind: 'secret', namespace: 'aigress-system', name: 'aigress-ca', bootstrap: true },
      defaultPolicyFile: undefined,
      serviceName: 'aigress',
      namespace: 'aigress-system',
    });
    expect(controlPlaneSettings({ kubeconfig: '/k', caBootstrap: false, caSecret: 'my-ca' }, {}, 'ns')?.caSource).toEqual({ kind: 'secret', namespace: 'ns', name: 'my-ca', bootstrap: false });
    expect(controlPlaneSettings({ caSource: 'files', caDir: '/etc/ca' }, inPod, 'ns')?.caSource).toEqual({ kind: 'files', dir: '/etc/ca' });
  });

  it('takes the STS and Entra ID endpoints for minted credentials from flags only (a policy cannot name them)', () => {
    expect(controlPlaneSettings({ stsRegion: 'eu-central-1', entraAuthority: 'https://login.microsoftonline.us' }, inPod, 'ns')?.minting).toEqual({ stsRegion: 'eu-central-1', entraAuthority: 'https://login.microsoftonline.us/' });
    expect(controlPlaneSettings({ stsEndpoint: 'http://127.0.0.1:8080/' }, inPod, 'ns')?.minting).toEqual({ stsEndpoint: 'http://127.0.0.1:8080/' });
  });

  it('names the flag for every bad combination (usage errors, exit 2)', () => {
    const bad: Array<[Parameters<typeof controlPlaneSettings>[0], RegExp]> = [
      [{ caSource: 'vault' }, /^--ca-source "vault": must be secret or files$/],
      [{ caSource: 'files' }, /^--ca-source files needs --ca-dir DIR/],
      [{ caDir: '/x' }, /^--ca-dir goes with --ca-source files$/],
      [{ caSecret: 'Bad_Name' }, /^--ca-secret "Bad_Name": not a valid Secret name$/],
      [{ serviceName: '1svc' }, /^--service-name "1svc": not a valid Service name$/],
      [{ stsEndpoint: 'http://sts.example.com/' }, /^--sts-endpoint "http:\/\/sts.example.com\/": must be https \(http only on a loopback address\)$/],
      [{ stsEndpoint: 'not a url' }, /^--sts-endpoint "not a url": not a URL$/],
      [{ entraAuthority: 'https://u:p@login.example/' }, /^--entra-authority .*: no credentials, query or fragment$/],
      [{ stsRegion: 'Europe' }, /^--sts-region "Europe": not an AWS region/],
    ];
    for (const [flags, re] of bad) {
      let err: unknown;
      try {
        controlPlaneSettings(flags, inPod, 'ns');
      } catch (e) {
        err = e;
      }
      expect(err, re.source).toBeInstanceOf(UserError);
      expect((err as UserError).message).toMatch(re);
      expect((err as UserError).exitCode).toBe(2);
    }
  });
});
