import type { Logger } from '../../shared/log.js';
import type { Clock } from '../../shared/renewal.js';
import type { KubeClients } from '../kube.js';
import { WaitRoom } from '../long-poll.js';
import { Informer, type InformerHealth, type KubeObject } from '../policy/informer.js';

// The Secrets of the control plane's own namespace, watched (list + watch, so an edit reaches waiting proxies
// as fast as the watch event arrives) and kept in memory. Only a Secret that opts in with the annotation
// `aigress.io/credential-namespaces` (`*`, or a comma-separated list of namespaces) is ever served: the CA's
// Secret, Helm's release Secrets and anything else in the namespace cannot be named into a proxy by a policy.

export const ANNOTATION_CREDENTIAL_NAMESPACES = 'aigress.io/credential-namespaces';

interface SecretObject extends KubeObject {
  data?: Record<string, string>;
  metadata?: KubeObject['metadata'] & { annotations?: Record<string, string> };
}

/** Who may use a Secret, from its annotation: `*`, or a list of namespaces; absent: nobody. */
export function secretAllows(annotations: Record<string, string> | undefined, namespace: string): boolean {
  const v = annotations?.[ANNOTATION_CREDENTIAL_NAMESPACES];
  if (v === undefined) return false;
  const list = v.split(',').map((s) => s.trim()).filter(Boolean);
  return list.includes('*') || list.includes(namespace);
}

export interface CredentialSecret {
  /** Data keys to decoded values. */
  readonly data: ReadonlyMap<string, string>;
  allows(namespace: string): boolean;
}

export class CredentialSecrets {
  private readonly informer: Informer<SecretObject>;
  private readonly secrets = new Map<string, CredentialSecret>();
  private version = 0;
  private synced = false;
  private readonly room = new WaitRoom();
  private stopped = false;

  constructor(opts: { clients: KubeClients; namespace: string; log: Logger; clock?: Clock; watchTimeoutSeconds?: number }) {
    const { core, watch } = opts.clients;
    this.informer = new Informer<SecretObject>({
      name: 'secrets',
      watch,
      path: `/api/v1/namespaces/${opts.namespace}/secrets`,
      list: async () => (await core.listNamespacedSecret({ namespace: opts.namespace })) as unknown as { items: SecretObject[]; metadata?: { resourceVersion?: string } },
      onEvent: (type, s) => this.onEvent(type, s),
      log: opts.log,
      clock: opts.clock,
      watchTimeoutSeconds: opts.watchTimeoutSeconds,
    });
  }

  /** Resolves once the first list is in. */
  start(): Promise<void> {
    return this.informer.start().then(() => void (this.synced = true));
  }

  /** False until the first list is in: before that, a missing Secret means nothing. */
  isSynced(): boolean {
    return this.synced;
  }

  stop(): void {
    this.informer.stop();
    this.stopped = true;
    this.room.wake();
  }

  health(): InformerHealth {
    return this.informer.health();
  }

  get(name: string): CredentialSecret | undefined {
    return this.secrets.get(name);
  }

  /** Changes since start; a long poll waits for it to move. */
  current(): number {
    return this.version;
  }

  /** Resolves when a credential Secret changed after `version` (or the watch stopped), after `timeoutMs`, or when `signal` aborts. */
  async waitForChange(version: number, timeoutMs: number, signal: AbortSignal): Promise<void> {
    await this.room.wait(() => this.version !== version || this.stopped, timeoutMs, signal);
  }

  /** Long polls waiting on a Secret change (a gauge, and for leak checks). */
  waiting(): number {
    return this.room.size;
  }

  private onEvent(type: string, s: SecretObject): void {
    const name = String(s.metadata?.name);
    const annotations = s.metadata?.annotations;
    const had = this.secrets.has(name);
    if (type === 'DELETED' || annotations?.[ANNOTATION_CREDENTIAL_NAMESPACES] === undefined) {
      // Not (or no longer) a credential Secret: its data is not kept.
      this.secrets.delete(name);
      if (!had) return;
    } else {
      const data = new Map<string, string>();
      for (const [k, v] of Object.entries(s.data ?? {})) data.set(k, Buffer.from(v, 'base64').toString('utf8'));
      this.secrets.set(name, { data, allows: (ns) => secretAllows(annotations, ns) });
    }
    this.version++;
    this.room.wake();
  }
}
