import { ADMIN_PORT, CAPTURE_PORT, CA_BUNDLE_DIR } from '../../shared/constants.js';

// Defaults shared by the CLI flags and the programmatic API (kept apart so `aigress --help` loads nothing heavy).

export const PROXY_DEFAULTS = {
  capturePort: CAPTURE_PORT,
  adminPort: ADMIN_PORT,
  bundleDir: CA_BUNDLE_DIR,
  maxBodyBytes: 10 * 1024 * 1024,
  drainTimeoutMs: 25_000,
  upstreamTimeoutMs: 300_000,
  /**
   * Slow clients: an app's TLS handshake and each request head must arrive within this (a slowloris trickling
   * header bytes is cut), and a request body may pause at most clientBodyTimeoutMs between bytes.
   */
  clientHeaderTimeoutMs: 30_000,
  clientBodyTimeoutMs: 60_000,
  /** How long a new connection may take to send enough bytes to route it. */
  peekTimeoutMs: 5_000,
  /**
   * With SO_ORIGINAL_DST: a client silent this long is taken for a server-first protocol (MySQL, SMTP…) and passed
   * through to its original destination. Every TLS and HTTP client speaks within milliseconds of connecting.
   */
  serverFirstWaitMs: 1_000,
  /** REDIRECT of locally generated traffic lands on loopback; binding only there keeps other pods out. */
  listenAddresses: ['127.0.0.1', '::1'] as readonly string[],
} as const;
