// Builds the binary AWS event-stream fixtures for the Bedrock tests from their JSON sources, with the same
// codec the AWS SDKs use (@smithy/eventstream-codec): `node scripts/gen-bedrock-fixtures.mjs`.
// Each source lists messages as Bedrock sends them; the output is committed, so tests never depend on this script.
import { Buffer } from 'node:buffer';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EventStreamCodec } from '@smithy/eventstream-codec';
import { fromUtf8, toUtf8 } from '@smithy/util-utf8';

const dir = new URL('../test/fixtures/providers/bedrock/', import.meta.url).pathname;
const codec = new EventStreamCodec(toUtf8, fromUtf8);
const str = (value) => ({ type: 'string', value });

for (const file of readdirSync(dir).filter((f) => f.endsWith('.events.json'))) {
  const { messages } = JSON.parse(readFileSync(join(dir, file), 'utf8'));
  const frames = messages.map((m) => {
    // InvokeModelWithResponseStream wraps the model's own JSON event, base64-encoded, in a `chunk` event.
    const payload = m.inner === undefined ? m.payload : { bytes: Buffer.from(JSON.stringify(m.inner)).toString('base64'), p: m.p };
    return codec.encode({
      headers: { ':event-type': str(m.event), ':content-type': str('application/json'), ':message-type': str('event') },
      body: fromUtf8(JSON.stringify(payload)),
    });
  });
  const out = join(dir, file.replace(/\.events\.json$/, '.eventstream'));
  writeFileSync(out, Buffer.concat(frames.map((f) => Buffer.from(f))));
  console.log(`${out}: ${frames.length} messages`);
}
