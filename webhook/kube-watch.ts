import { request, type RequestOptions } from 'node:https';
import { createInterface } from 'node:readline';
import type { KubeConfig } from '@kubernetes/client-node';

// A Kubernetes watch (GET …?watch=true, one JSON event per line) that can be aborted from the moment it is
// asked for. client-node's Watch hands out its abort handle only once the response headers are in: a watch
// whose API server accepted the connection and never answered could not be cancelled, so every restart of a
// stalled watch left a request (and its socket) pending for good.

export interface WatchHandle {
  /** Ends the watch (and its connection) in whatever state it is; `done` is then told with an abort error. */
  abort(): void;
}

export type WatchQuery = Record<string, string | number | boolean | undefined>;

/** What the informer needs of a watch; client-node's Watch has the same shape. */
export interface WatchClient {
  watch(path: string, query: WatchQuery, onEvent: (type: string, object: never) => void, done: (err: unknown) => void): Promise<WatchHandle>;
}

export class KubeWatch implements WatchClient {
  constructor(private readonly config: KubeConfig) {}

  async watch(path: string, query: WatchQuery, onEvent: (type: string, object: never) => void, done: (err: unknown) => void): Promise<WatchHandle> {
    const cluster = this.config.getCurrentCluster();
    if (!cluster) throw new Error('no current cluster in the kubeconfig');
    const url = new URL(cluster.server + path);
    url.searchParams.set('watch', 'true');
    for (const [k, v] of Object.entries(query)) if (v !== undefined) url.searchParams.set(k, String(v));
    const opts: RequestOptions = {};
    await this.config.applyToHTTPSOptions(opts); // agent with the cluster's CA and client certificate, bearer token
    const ctl = new AbortController();
    let ended = false;
    const finish = (err: unknown): void => {
      if (ended) return;
      ended = true;
      ctl.abort();
      done(err);
    };
    const req = request(url, { ...opts, method: 'GET', signal: ctl.signal }, (res) => {
      // Ending the watch destroys the response too: its error is expected then, and told once otherwise.
      res.on('error', finish);
      if (res.statusCode !== 200) {
        res.resume();
        finish(Object.assign(new Error(`watch ${path}: HTTP ${res.statusCode}`), { statusCode: res.statusCode }));
        return;
      }
      const lines = createInterface({ input: res, crlfDelay: Infinity });
      lines.on('error', finish); // readline passes the response's error on
      lines.on('line', (line) => {
        if (ended) return;
        let event: { type?: unknown; object?: unknown };
        try {
          event = JSON.parse(line) as typeof event;
        } catch {
          return; // a torn line; the watch goes on
        }
        if (typeof event.type === 'string') onEvent(event.type, event.object as never);
      });
      res.on('close', () => finish(null));
    });
    req.on('error', finish);
    req.end();
    return { abort: () => ctl.abort() };
  }
}
