// Shared by the provider tests: fixtures, chunkings, and driving an adapter's usage reader.
import { readFileSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ProviderAdapter, ProviderRequest, RequestDescription, UsageResult } from '../../../shared/providers/types.js';
import { usageReader } from '../../../shared/providers/usage.js';
import { mulberry32 } from '../../support/prng.js';

const FIXTURES = fileURLToPath(new URL('../../fixtures/providers/', import.meta.url));

export function fixture(provider: string, name: string): Buffer {
  return readFileSync(join(FIXTURES, provider, name));
}

/**
 * Every way the tests cut a body: whole; in two at every byte offset (empty halves included); one byte at a
 * time; and `random` random chunkings (seeded) with chunk sizes from 1 byte to a quarter of the body.
 */
export function chunkings(buf: Buffer, random = 40, seed = 1): { name: string; chunks: Buffer[] }[] {
  const out: { name: string; chunks: Buffer[] }[] = [{ name: 'whole', chunks: [buf] }];
  for (let i = 0; i <= buf.length; i++) out.push({ name: `split@${i}`, chunks: [buf.subarray(0, i), buf.subarray(i)] });
  out.push({ name: 'bytewise', chunks: [...buf].map((b) => Buffer.from([b])) });
  const rnd = mulberry32(seed);
  const max = Math.max(1, Math.floor(buf.length / 4));
  for (let r = 0; r < random; r++) {
    const chunks: Buffer[] = [];
    for (let pos = 0; pos < buf.length; ) {
      const n = 1 + Math.floor(rnd() * max);
      chunks.push(buf.subarray(pos, pos + n));
      pos += n;
    }
    out.push({ name: `random#${r}`, chunks });
  }
  return out;
}

export function request(host: string, path: string, body: unknown = '', method = 'POST', headers: IncomingHttpHeaders = {}): ProviderRequest {
  const buf = Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  return { host, method, path, headers: { 'content-type': 'application/json', ...headers }, body: buf };
}

export const SSE = { 'content-type': 'text/event-stream; charset=utf-8' };
export const JSON_TYPE = { 'content-type': 'application/json' };
export const EVENT_STREAM = { 'content-type': 'application/vnd.amazon.eventstream' };

export function readUsage(adapter: ProviderAdapter, d: RequestDescription, headers: IncomingHttpHeaders, chunks: Buffer[], status = 200): UsageResult {
  const r = usageReader(adapter, d, { status, headers });
  for (const c of chunks) r.push(c);
  return r.finish();
}

/**
 * Reads `body` in every chunking and returns the distinct results (as JSON); a correct reader yields exactly
 * one. Failing chunkings are named so they can be replayed.
 */
export function usageUnderAllChunkings(adapter: ProviderAdapter, d: RequestDescription, headers: IncomingHttpHeaders, body: Buffer): Map<string, string[]> {
  const seen = new Map<string, string[]>();
  for (const { name, chunks } of chunkings(body)) {
    const key = JSON.stringify(readUsage(adapter, d, headers, chunks));
    seen.set(key, [...(seen.get(key) ?? []), name]);
  }
  return seen;
}

/** The one result all chunkings agree on; throws naming the chunkings that disagree. */
export function stableUsage(adapter: ProviderAdapter, d: RequestDescription, headers: IncomingHttpHeaders, body: Buffer): UsageResult {
  const seen = usageUnderAllChunkings(adapter, d, headers, body);
  if (seen.size !== 1) {
    const detail = [...seen].map(([k, names]) => `${k} ← ${names.slice(0, 5).join(', ')}${names.length > 5 ? '…' : ''}`).join('\n');
    throw new Error(`usage depends on chunking:\n${detail}`);
  }
  return JSON.parse([...seen.keys()][0]!) as UsageResult;
}
