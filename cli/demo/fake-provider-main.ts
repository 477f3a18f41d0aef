import { appendFileSync } from 'node:fs';
import { loadFakeProviderConfig } from './fake-provider-config.js';
import { startFakeProvider, type FakeRecord } from './fake-provider.js';

// The fake provider as its own process (the e2e suite starts it in the "outside" network namespace):
//   node dist/cli/demo/fake-provider-main.js CONFIG.json
// Each record is one JSON line, appended to recordFile (or written to stdout) before the answer goes out.
// SIGTERM exits 0; a bad config or a port in use is one line on stderr and exit code 1.

function fail(message: string): never {
  process.stderr.write(`fake-provider: ${message}\n`);
  process.exit(1);
}

const configPath = process.argv[2];
if (configPath === undefined || process.argv.length > 3) fail('usage: fake-provider-main.js CONFIG.json');

process.on('SIGTERM', () => process.exit(0));

try {
  const { config, options } = loadFakeProviderConfig(configPath);
  const recordFile = config.recordFile;
  const write = recordFile === undefined
    ? (line: string): void => void process.stdout.write(line)
    : (line: string): void => appendFileSync(recordFile, line);
  await startFakeProvider({ ...options, onRecord: (r: FakeRecord) => write(`${JSON.stringify(r)}\n`) });
} catch (err) {
  const e = err as NodeJS.ErrnoException & { port?: number };
  fail(e.code && e.syscall === 'listen' ? `cannot listen on port ${e.port ?? '?'}: ${e.code}` : e.message);
}
