// The admission webhook as `aigress webhook` serves it (dist/webhook/server.js: HTTPS, POST /mutate, metrics,
// one info log line per admission), without the Kubernetes parts it needs only for the CA and policy: the
// in-process server the tests use. Run as a child: `node bench/webhook.js DIR PORT`; prints "listening PORT".

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(fileURLToPath(import.meta.url), '../..');
const [dir, port] = process.argv.slice(2);
const { createWebhookServer } = await import(join(ROOT, 'dist/webhook/server.js'));
const { defaultConfig } = await import(join(ROOT, 'dist/webhook/config.js'));
const { createWebhookMetrics } = await import(join(ROOT, 'dist/webhook/metrics.js'));
const { createLogger } = await import(join(ROOT, 'dist/shared/log.js'));
const { pino } = await import('pino');
const { Registry } = await import('prom-client');

const sink = pino.destination({ dest: '/dev/null', minLength: 4096, sync: false });
const log = createLogger('webhook', { level: 'info' }, sink);
const base = defaultConfig().injection;
const injection = { ...base, controlPlane: { ...base.controlPlane, caPem: readFileSync(join(dir, 'ca/ca.crt'), 'utf8') } };
const server = await createWebhookServer({
  tls: { certPem: readFileSync(join(dir, 'webhook.crt'), 'utf8'), keyPem: readFileSync(join(dir, 'webhook.key'), 'utf8') },
  logger: log,
  injection,
  metrics: createWebhookMetrics(new Registry()),
});
const bound = await server.listen(Number(port), '127.0.0.1');
process.stdout.write(`listening ${bound}\n`);
process.on('SIGTERM', () => process.exit(0));
