// A credential source over a map, for pipeline tests (the real sources have their own tests).
import { resolveCredential, type CredentialMaterial, type Unresolved } from '../../../shared/credentials/material.js';
import { mintVertexToken } from '../../../shared/credentials/vertex-token.js';
import type { Credential } from '../../../shared/policy/types.js';
import type { CredentialSource } from '../../../sidecar/credentials/source.js';

/** Secret name → data key → value. */
export type Secrets = Record<string, Record<string, string>>;

export class MapSource implements CredentialSource {
  used: Credential[][] = [];
  released = 0;
  constructor(public secrets: Secrets) {}
  use(c: readonly Credential[]): () => void {
    this.used.push([...c]);
    return () => void this.released++;
  }
  get(c: Credential): CredentialMaterial | Unresolved | undefined {
    const s = this.secrets[c.secretRef.name];
    if (!s) return { error: `no Secret ${c.secretRef.name}` };
    return resolveCredential(c, (k) => s[k], (json) => mintVertexToken(json));
  }
  settled(): Promise<void> {
    return Promise.resolve();
  }
  close(): void {}
}
