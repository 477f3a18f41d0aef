import { describe, expect, it } from 'vitest';
import { CA_BUNDLE_PATH, CA_ENV_NAMES, JAVA_TRUST_FLAGS, planEnv } from '../../../webhook/inject/env.js';

describe('planEnv', () => {
  it('adds every CA variable and JAVA_TOOL_OPTIONS to a container without env', () => {
    const plan = planEnv({ name: 'app' });
    expect(plan.add.map((e) => e.name)).toEqual([...CA_ENV_NAMES, 'JAVA_TOOL_OPTIONS']);
    expect(plan.add.slice(0, 6).every((e) => e.value === CA_BUNDLE_PATH)).toBe(true);
    expect(plan.add[6]!.value).toBe(JAVA_TRUST_FLAGS);
    expect(plan.warnings).toEqual([]);
  });

  it('leaves a variable the container sets as it is and names container and variables in one warning', () => {
    const plan = planEnv({
      name: 'scraper',
      env: [
        { name: 'SSL_CERT_FILE', value: '/etc/ssl/mine.pem' },
        { name: 'AWS_CA_BUNDLE', valueFrom: { secretKeyRef: { name: 's', key: 'k' } } },
      ],
    });
    expect(plan.add.map((e) => e.name)).not.toContain('SSL_CERT_FILE');
    expect(plan.add.map((e) => e.name)).not.toContain('AWS_CA_BUNDLE');
    expect(plan.warnings).toEqual([
      'container "scraper" already sets SSL_CERT_FILE, AWS_CA_BUNDLE: left as set, so the clients reading them may not trust the aigress CA',
    ]);
  });

  it('says nothing about a variable already set to the bundle path', () => {
    const plan = planEnv({ name: 'a', env: [{ name: 'CURL_CA_BUNDLE', value: CA_BUNDLE_PATH }] });
    expect(plan.warnings).toEqual([]);
    expect(plan.add.map((e) => e.name)).not.toContain('CURL_CA_BUNDLE');
  });

  it('appends the trust-store flags to an existing JAVA_TOOL_OPTIONS value, once', () => {
    const plan = planEnv({ name: 'jvm', env: [{ name: 'X', value: '1' }, { name: 'JAVA_TOOL_OPTIONS', value: ' -Xmx1g ' }] });
    expect(plan.javaUpdate).toEqual({ index: 1, value: `-Xmx1g ${JAVA_TRUST_FLAGS}` });
    expect(plan.add.map((e) => e.name)).not.toContain('JAVA_TOOL_OPTIONS');
    const again = planEnv({ name: 'jvm', env: [{ name: 'JAVA_TOOL_OPTIONS', value: `-Xmx1g ${JAVA_TRUST_FLAGS}` }] });
    expect(again.javaUpdate).toBeUndefined();
  });

  it('warns when the container has its own trust store, whose flag aigress\'s then overrides', () => {
    const plan = planEnv({ name: 'jvm', env: [{ name: 'JAVA_TOOL_OPTIONS', value: '-Djavax.net.ssl.trustStore=/etc/mine.jks' }] });
    expect(plan.javaUpdate?.value).toBe(`-Djavax.net.ssl.trustStore=/etc/mine.jks ${JAVA_TRUST_FLAGS}`);
    expect(plan.warnings).toEqual([expect.stringContaining('sets its own -Djavax.net.ssl.trustStore')]);
  });

  it('cannot append to JAVA_TOOL_OPTIONS from valueFrom: leaves it and warns', () => {
    const plan = planEnv({ name: 'kt', env: [{ name: 'JAVA_TOOL_OPTIONS', valueFrom: { configMapKeyRef: { name: 'c', key: 'k' } } }] });
    expect(plan.javaUpdate).toBeUndefined();
    expect(plan.add.map((e) => e.name)).not.toContain('JAVA_TOOL_OPTIONS');
    expect(plan.warnings).toEqual([expect.stringMatching(/^container "kt" sets JAVA_TOOL_OPTIONS from configMapKeyRef/)]);
  });

  it('uses the last entry of a duplicated name, as the kubelet does', () => {
    const plan = planEnv({ name: 'd', env: [{ name: 'JAVA_TOOL_OPTIONS', value: 'a' }, { name: 'JAVA_TOOL_OPTIONS', value: 'b' }] });
    expect(plan.javaUpdate).toEqual({ index: 1, value: `b ${JAVA_TRUST_FLAGS}` });
  });

  it('warns that envFrom cannot be inspected and the added entries win over it', () => {
    const plan = planEnv({ name: 'bot', envFrom: [{ configMapRef: { name: 'm' } }], env: [{ name: 'SSL_CERT_FILE', value: '/x' }] });
    expect(plan.warnings[1]).toBe(
      'container "bot" uses envFrom: aigress\'s env entries override any NODE_EXTRA_CA_CERTS, REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE, AWS_CA_BUNDLE, GRPC_DEFAULT_SSL_ROOTS_FILE_PATH, JAVA_TOOL_OPTIONS set there',
    );
  });
});
