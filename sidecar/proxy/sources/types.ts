import type { SecureContext } from 'node:tls';
import type { EgressPolicy } from '../../../shared/policy/types.js';

// Where the proxy gets its certificates and its policy. Standalone mode (files: --policy, --ca-dir) and
// cluster mode (the control plane's issuer and policy endpoint) are two implementations of the same pair,
// so the data plane never knows which one it runs with.

export interface CertificateSource {
  /** Resolves once the source can serve (CA loaded, or first certificate issued). Readiness waits on it. */
  ready(): Promise<void>;
  /**
   * The TLS context to terminate a connection for `host` (an AI host of the policy). Called on the
   * connection path: after the first call per host it must answer from memory, without I/O.
   */
  contextFor(host: string): SecureContext | Promise<SecureContext>;
  /** PEM of the CA that apps must trust (goes into bundle.pem and the Java trust store). */
  caPem(): string;
  close(): void;
}

export interface PolicySource {
  /** Resolves with the first good policy; the proxy is not ready before. */
  ready(): Promise<EgressPolicy>;
  current(): EgressPolicy;
  /** Called with every new good policy; a rejected policy never reaches this. */
  onChange(listener: (policy: EgressPolicy) => void): void;
  close(): void;
}
