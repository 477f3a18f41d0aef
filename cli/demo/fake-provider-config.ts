import { readFileSync } from 'node:fs';
import type { FakeProviderOptions, PemCertificate } from './fake-provider.js';
import { isObj, type Obj } from '../../shared/json.js';

// The fake provider's CONFIG.json, as the e2e suite writes it (certificates as file paths, records to a file):
//   { "httpsPort": 443, "httpPort": 80, "listenAddress": "::",
//     "certs": { "<host>": { "cert": "<pem file>", "key": "<pem file>" } }, "defaultHost": "<host>",
//     "openaiHosts": [...], "anthropicHosts": [...], "bedrockHosts": [...], "recordFile": "<jsonl file>" }
// `listenAddress` is optional ('::'), so is `bedrockHosts` (none); without `recordFile` the records go to stdout,
// one JSON line each.

export interface FakeProviderConfigFile {
  httpsPort: number;
  httpPort: number;
  listenAddress?: string;
  certs: Record<string, { cert: string; key: string }>;
  defaultHost: string;
  openaiHosts: string[];
  anthropicHosts: string[];
  bedrockHosts?: string[];
  recordFile?: string;
}

/** A bad config: the message names the field. */
export class FakeProviderConfigError extends Error {}


function port(doc: Obj, field: string): number {
  const v = doc[field];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 65_535) {
    throw new FakeProviderConfigError(`${field}: expected a port number 0-65535, got ${JSON.stringify(v)}`);
  }
  return v;
}

function hosts(doc: Obj, field: string): string[] {
  const v = doc[field];
  if (!Array.isArray(v) || !v.every((h): h is string => typeof h === 'string' && h !== '')) {
    throw new FakeProviderConfigError(`${field}: expected a list of host names, got ${JSON.stringify(v)}`);
  }
  return v;
}

function optionalString(doc: Obj, field: string): string | undefined {
  const v = doc[field];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || v === '') throw new FakeProviderConfigError(`${field}: expected a non-empty string, got ${JSON.stringify(v)}`);
  return v;
}

/** Checks a parsed CONFIG.json; every problem is reported with its field path. */
export function checkFakeProviderConfig(doc: unknown): FakeProviderConfigFile {
  if (!isObj(doc)) throw new FakeProviderConfigError('the config must be a JSON object');
  const certs = doc.certs;
  if (!isObj(certs) || Object.keys(certs).length === 0) throw new FakeProviderConfigError('certs: expected a map of host → { cert, key } file paths');
  const files: FakeProviderConfigFile['certs'] = {};
  for (const [host, pair] of Object.entries(certs)) {
    if (!isObj(pair) || typeof pair.cert !== 'string' || typeof pair.key !== 'string') {
      throw new FakeProviderConfigError(`certs.${host}: expected { "cert": "<pem file>", "key": "<pem file>" }`);
    }
    files[host] = { cert: pair.cert, key: pair.key };
  }
  const defaultHost = doc.defaultHost;
  if (typeof defaultHost !== 'string' || !(defaultHost in files)) {
    throw new FakeProviderConfigError(`defaultHost: must name one of the hosts in certs (${Object.keys(files).join(', ')}), got ${JSON.stringify(defaultHost)}`);
  }
  const config: FakeProviderConfigFile = {
    httpsPort: port(doc, 'httpsPort'),
    httpPort: port(doc, 'httpPort'),
    certs: files,
    defaultHost,
    openaiHosts: hosts(doc, 'openaiHosts'),
    anthropicHosts: hosts(doc, 'anthropicHosts'),
  };
  if (doc.bedrockHosts !== undefined) config.bedrockHosts = hosts(doc, 'bedrockHosts');
  const listenAddress = optionalString(doc, 'listenAddress');
  if (listenAddress !== undefined) config.listenAddress = listenAddress;
  const recordFile = optionalString(doc, 'recordFile');
  if (recordFile !== undefined) config.recordFile = recordFile;
  return config;
}

function readPem(path: string, field: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new FakeProviderConfigError(`${field}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}

/** Reads CONFIG.json and the PEM files it names into start options (without the record sink). */
export function loadFakeProviderConfig(path: string): { config: FakeProviderConfigFile; options: FakeProviderOptions } {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new FakeProviderConfigError(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new FakeProviderConfigError(`${path}: not JSON (${(err as Error).message})`);
  }
  const config = checkFakeProviderConfig(doc);
  const certs: Record<string, PemCertificate> = {};
  for (const [host, f] of Object.entries(config.certs)) {
    certs[host] = { cert: readPem(f.cert, `certs.${host}.cert`), key: readPem(f.key, `certs.${host}.key`) };
  }
  const options: FakeProviderOptions = {
    httpsPort: config.httpsPort,
    httpPort: config.httpPort,
    certs,
    defaultHost: config.defaultHost,
    openaiHosts: config.openaiHosts,
    anthropicHosts: config.anthropicHosts,
  };
  if (config.listenAddress !== undefined) options.listenAddress = config.listenAddress;
  if (config.bedrockHosts !== undefined) options.bedrockHosts = config.bedrockHosts;
  return { config, options };
}
