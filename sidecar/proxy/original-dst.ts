import { existsSync, realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isIP, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { errorMessage } from '../../shared/errors.js';

// Where a captured connection was going before iptables REDIRECT sent it to the proxy: SO_ORIGINAL_DST
// (IP6T_SO_ORIGINAL_DST for IPv6) on the accepted socket, read by a small N-API addon
// (sidecar/native/original_dst.c, built by node-gyp at install). Without it the proxy can only route by name
// and says so at start (docs/capture.md).

export interface OriginalDestination {
  address: string;
  port: number;
}

/** Reads one accepted socket's original destination; undefined when it was not redirected. */
export type OriginalDestinationReader = (socket: Socket) => OriginalDestination | undefined;

interface Addon {
  originalDst(fd: number): { address: string; port: number; family: number } | null;
}

const ADDON_FILE = 'original_dst.node';

/**
 * Where the addon may be, in order: $AIGRESS_ORIGINAL_DST_ADDON; beside this module; beside the entry script the
 * process runs (the esbuild bundle ships the addon next to aigress.mjs, while this code lands in a chunks/ file);
 * build/Release of the package, from dist/sidecar/proxy/ (compiled) or sidecar/proxy/ (sources).
 */
function candidates(): string[] {
  const here = dirname(fileURLToPath(import.meta.url));
  const env = process.env.AIGRESS_ORIGINAL_DST_ADDON;
  const entry = entryDirectory();
  return [
    ...(env ? [env] : []),
    join(here, ADDON_FILE),
    ...(entry && entry !== here ? [join(entry, ADDON_FILE)] : []),
    join(here, '..', '..', '..', 'build', 'Release', ADDON_FILE),
    join(here, '..', '..', 'build', 'Release', ADDON_FILE),
  ];
}

// Resolved through symlinks: the image may start the entry through a link on PATH.
function entryDirectory(): string | undefined {
  const main = process.argv[1];
  if (!main) return undefined;
  try {
    return dirname(realpathSync(main));
  } catch {
    return undefined;
  }
}

// The descriptor libuv holds for the socket; Node exposes it on the handle on Unix. Not a public API, so a
// missing or odd value means "unknown", never a guess.
function fdOf(socket: Socket): number | undefined {
  const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

const LOOPBACK = /^(127\.|::1$|::ffff:127\.)/;

/** A reader over the addon's function. A loopback original is a direct connection to the proxy, not a capture. */
export function readerFor(originalDst: Addon['originalDst']): OriginalDestinationReader {
  return (socket) => {
    const fd = fdOf(socket);
    if (fd === undefined) return undefined;
    const r = originalDst(fd);
    if (!r || isIP(r.address) === 0 || !(r.port >= 1 && r.port <= 65535) || LOOPBACK.test(r.address)) return undefined;
    return { address: r.address, port: r.port };
  };
}

export type AddonLoad = { ok: true; read: OriginalDestinationReader; file: string } | { ok: false; why: string };

/** Loads the addon once per process; on Linux only (SO_ORIGINAL_DST is netfilter's). */
export function loadOriginalDestination(): AddonLoad {
  if (process.platform !== 'linux') return { ok: false, why: `not Linux (${process.platform})` };
  const file = candidates().find((f) => existsSync(f));
  if (!file) return { ok: false, why: `${ADDON_FILE} not found (npm run build:native builds it)` };
  try {
    const addon = createRequire(import.meta.url)(file) as Addon;
    if (typeof addon.originalDst !== 'function') return { ok: false, why: `${file} has no originalDst()` };
    return { ok: true, read: readerFor(addon.originalDst.bind(addon)), file };
  } catch (err) {
    return { ok: false, why: `${file}: ${errorMessage(err)}` };
  }
}
