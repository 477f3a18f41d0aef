// An ordinary Amazon Bedrock client (AWS SDK for JavaScript v3): the region's default endpoint, credentials from
// AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, trust from the environment. Nothing here knows about aigress.
//
// Usage: node bedrock.mjs converse|stream REGION MODEL PROMPT [--http1]
//   → prints {"content","stopReason","usage","events"} as JSON (events: the stream's event types, in order)
//   On an error from the service: exit 1, stderr {"error": name, "status", "message"} as one JSON line.
//
// The SDK's default transport for bedrock-runtime is HTTP/2 (NodeHttp2Handler, ALPN h2 only). `--http1` gives
// the client the SDK's own HTTP/1.1 handler instead, as an app can choose in its client options.
import { BedrockRuntimeClient, ConverseCommand, ConverseStreamCommand } from '@aws-sdk/client-bedrock-runtime';
import { NodeHttpHandler } from '@smithy/node-http-handler';

const args = process.argv.slice(2);
const http1 = args.includes('--http1');
const [mode, region, modelId, prompt] = args.filter((a) => a !== '--http1');
if (!['converse', 'stream'].includes(mode) || !region || !modelId || prompt === undefined) {
  console.error(`usage: bedrock.mjs converse|stream REGION MODEL PROMPT [--http1] (got ${args.join(' ')})`);
  process.exit(2);
}

const client = new BedrockRuntimeClient({ region, ...(http1 && { requestHandler: new NodeHttpHandler() }) });
const input = { modelId, messages: [{ role: 'user', content: [{ text: prompt }] }], inferenceConfig: { maxTokens: 256 } };

try {
  if (mode === 'converse') {
    const r = await client.send(new ConverseCommand(input));
    const content = (r.output?.message?.content ?? []).map((b) => b.text ?? '').join('');
    console.log(JSON.stringify({ content, stopReason: r.stopReason, usage: r.usage, events: null }));
  } else {
    const r = await client.send(new ConverseStreamCommand(input));
    let content = '';
    let stopReason = null;
    let usage = null;
    const events = [];
    for await (const event of r.stream) {
      const [type] = Object.keys(event);
      events.push(type);
      if (event.contentBlockDelta) content += event.contentBlockDelta.delta?.text ?? '';
      if (event.messageStop) stopReason = event.messageStop.stopReason;
      if (event.metadata) usage = event.metadata.usage;
    }
    console.log(JSON.stringify({ content, stopReason, usage, events }));
  }
} catch (err) {
  console.error(JSON.stringify({ error: err.name, status: err.$metadata?.httpStatusCode ?? null, message: err.message, code: err.code ?? null }));
  process.exit(1);
} finally {
  client.destroy();
}
