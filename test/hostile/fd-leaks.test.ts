import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ControlPlaneServer } from '../../webhook/server.js';
import { connectionStorm, fdsSettle, openFds, type StormOptions } from '../support/resources.js';
import { adminRequest, createTestPki, startTestProxy, type TestProxy } from '../unit/proxy/support.js';
import { testPki } from '../unit/webhook/support.js';
import { pino } from 'pino';

// Connections that go away before they are useful must give their descriptors back: at the open-files limit
// the proxy accepts nothing (the pod's egress is down) and the control plane answers no admission.

const N = 1_000;
/** Descriptors the runtime may open meanwhile (libuv, log files, the test's own sockets in TIME_WAIT do not count). */
const SLACK = 20;

const partialClientHello = Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]);
const partialHttpHead = Buffer.from('POST /v1/chat/completions HTTP/1.1\r\nHost: api.open');

describe('proxy: clients that close before they can be routed', () => {
  let p: TestProxy;
  beforeAll(async () => {
    p = await startTestProxy(await createTestPki());
    await p.handle.ready;
  });
  afterAll(() => p.handle.close());

  it.each<[string, StormOptions]>([
    ['a bare connect + close', {}],
    ['a bare connect + half-close (FIN, waits for the server)', { close: 'end' }],
    ['a partial ClientHello', { payload: partialClientHello }],
    ['a partial HTTP head', { payload: partialHttpHead, close: 'end' }],
  ])('%s, 1,000 times, leaves no descriptor behind', async (_what, storm) => {
    await connectionStorm(p.handle.capturePort, 20, storm); // warm: lazily opened runtime descriptors
    const before = openFds();
    await connectionStorm(p.handle.capturePort, N, storm);
    const after = await fdsSettle(before + SLACK);
    expect(after - before).toBeLessThanOrEqual(SLACK);
    expect((await adminRequest(p, '/readyz')).status).toBe(200);
  });
});

describe('control plane: connections that never finish the TLS handshake', () => {
  let server: ControlPlaneServer;
  let port: number;
  beforeAll(async () => {
    const pki = await testPki();
    server = await ControlPlaneServer.create({
      tls: { certPem: pki.serving.certPem, keyPem: pki.serving.keyPem },
      logger: pino({ level: 'silent' }),
      handshakeTimeoutMs: 200,
    });
    port = await server.listen(0, '127.0.0.1');
  });
  afterAll(() => server.close());

  it.each<[string, StormOptions]>([
    // The handshake timeout fires while the client is still there; then the client leaves.
    ['idle past the handshake timeout', { lingerMs: 400 }],
    ['a partial ClientHello, idle past the handshake timeout', { payload: partialClientHello, lingerMs: 400 }],
    ['plain HTTP on the TLS port', { payload: Buffer.from('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'), lingerMs: 300 }],
  ])('%s, 1,000 times, leaves no descriptor behind', async (_what, storm) => {
    await connectionStorm(port, 20, { ...storm, concurrency: 20 });
    const before = openFds();
    await connectionStorm(port, N, { ...storm, concurrency: 250 });
    const after = await fdsSettle(before + SLACK);
    expect(after - before).toBeLessThanOrEqual(SLACK);
  }, 60_000);
});
