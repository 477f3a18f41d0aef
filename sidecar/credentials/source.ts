import type { CredentialMaterial, Unresolved } from '../../shared/credentials/material.js';
import type { Credential } from '../../shared/policy/types.js';

// Where the proxy's managed credentials come from: a directory (standalone, --credentials-dir) or the control
// plane (cluster mode, GET /v1/credentials). Either keeps the material in memory only and answers the request
// path from memory; the processors (sidecar/pipeline/credentials.ts) never learn which source they use.

export interface CredentialSource {
  /**
   * Declares the credentials a pipeline uses (fetched or watched from now on); the returned function releases
   * them when that pipeline is closed. A source serves the union of what its live pipelines use.
   */
  use(credentials: readonly Credential[]): () => void;
  /**
   * The current material for `c`, from memory: the material, why it cannot be had (`{ error }`), or undefined
   * while it has not been looked up yet (just after start or a policy change).
   */
  get(c: Credential): CredentialMaterial | Unresolved | undefined;
  /** Resolves once `c` has been looked up (found or not), or when `signal` aborts. */
  settled(c: Credential, signal: AbortSignal): Promise<void>;
  close(): Promise<void> | void;
}
