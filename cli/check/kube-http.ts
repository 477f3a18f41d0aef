import { request, type RequestOptions } from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';
import { UserError } from '../../shared/errors.js';
import { defaultKubeConfig } from '../../webhook/kube.js';

// Plain JSON GETs and POSTs to the API server with the kubeconfig's credentials and TLS settings. `check` and
// `version` read objects as the API server sends them (no typed models: they only look at a few fields).

export interface KubeResponse {
  status: number;
  body: unknown;
}

export interface KubeHttp {
  /** The API server URL, for messages. */
  readonly server: string;
  get(path: string): Promise<KubeResponse>;
  post(path: string, body: unknown): Promise<KubeResponse>;
}

export function kubeHttp(kc: KubeConfig, timeoutMs = 10_000): KubeHttp {
  const cluster = kc.getCurrentCluster()!;
  const call = async (method: string, path: string, body?: unknown): Promise<KubeResponse> => {
    const url = new URL(path, cluster.server.endsWith('/') ? cluster.server : `${cluster.server}/`);
    const opts: RequestOptions = { method, headers: { accept: 'application/json' } };
    await kc.applyToHTTPSOptions(opts);
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    if (payload) Object.assign(opts.headers!, { 'content-type': 'application/json', 'content-length': String(payload.length) });
    return new Promise((resolve, reject) => {
      const req = request(url, { ...opts, timeout: timeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = text;
          try {
            parsed = JSON.parse(text);
          } catch {
            // not JSON (a proxy's HTML error page): keep the text
          }
          resolve({ status: res.statusCode ?? 0, body: parsed });
        });
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      req.on('error', reject);
      req.end(payload);
    });
  };
  return { server: cluster.server, get: (p) => call('GET', p), post: (p, b) => call('POST', p, b) };
}

/** The kubeconfig given with --kubeconfig, else $KUBECONFIG or ~/.kube/config (or the in-cluster account). */
export function clusterFromFlags(file: string | undefined): KubeHttp {
  const kc = defaultKubeConfig(file);
  if (!kc.getCurrentCluster()) throw new UserError('kubeconfig: no current cluster');
  return kubeHttp(kc);
}
