// The benchmark's certificates, all ECDSA P-256 (dist/shared/pki.js): the fake provider's own root and leaf, the
// CA aigress signs its leaves with (standalone --ca-dir), and a "peer" root whose leaf nginx, mitmproxy and the
// webhook serve. Every client verifies the chain it is given; nothing runs with verification off.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const HOST = 'api.openai.com';

export async function writeCertificates(root, dir) {
  const { createCA, issueLeaf, loadCA } = await import(join(root, 'dist/shared/pki.js'));
  const upstreamRoot = await createCA('bench fake-provider root');
  const upstreamLeaf = await issueLeaf(await loadCA(upstreamRoot.certPem, upstreamRoot.keyPem), { dnsNames: [HOST] });
  const aigressCa = await createCA('bench aigress CA');
  const peerRoot = await createCA('bench peer root');
  const peerCa = await loadCA(peerRoot.certPem, peerRoot.keyPem);
  const peerLeaf = await issueLeaf(peerCa, { dnsNames: [HOST] });
  const webhookLeaf = await issueLeaf(peerCa, { dnsNames: ['localhost'] });
  mkdirSync(join(dir, 'ca'), { recursive: true });
  const files = {
    'upstream-root.crt': upstreamRoot.certPem,
    'upstream.crt': upstreamLeaf.certPem,
    'upstream.key': upstreamLeaf.keyPem,
    'ca/ca.crt': aigressCa.certPem,
    'ca/ca.key': aigressCa.keyPem,
    'peer-root.crt': peerRoot.certPem,
    'peer.crt': peerLeaf.certPem,
    'peer.key': peerLeaf.keyPem,
    'peer.pem': peerLeaf.certPem + peerLeaf.keyPem, // mitmproxy --certs wants both in one file
    'webhook.crt': webhookLeaf.certPem,
    'webhook.key': webhookLeaf.keyPem,
  };
  for (const [name, pem] of Object.entries(files)) writeFileSync(join(dir, name), pem, { mode: 0o600 });
  return { upstreamRoot: upstreamRoot.certPem, aigressCa: aigressCa.certPem, peerRoot: peerRoot.certPem };
}
