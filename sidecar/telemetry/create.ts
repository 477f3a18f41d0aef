import type { Registry } from 'prom-client';
import { VERSION } from '../../shared/constants.js';
import { errorMessage } from '../../shared/errors.js';
import type { Logger } from '../../shared/log.js';
import type { PodIdentity } from '../pipeline/types.js';
import { auditSink, type Writable } from './audit-sink.js';
import type { TelemetryConfig } from './config.js';
import type { Attributes } from './otlp-json.js';
import { recordRefusal } from './refusal.js';
import type { TelemetryServices } from './types.js';

// Builds the telemetry services for the proxy from its checked configuration. The OTLP exporter's module is
// imported only when an endpoint is configured, so a proxy without OTLP loads and runs none of it.

const WORKLOAD_KINDS: Readonly<Record<string, string>> = {
  Deployment: 'k8s.deployment.name',
  StatefulSet: 'k8s.statefulset.name',
  DaemonSet: 'k8s.daemonset.name',
  ReplicaSet: 'k8s.replicaset.name',
  Job: 'k8s.job.name',
  CronJob: 'k8s.cronjob.name',
};

/** The proxy's resource: OTEL_RESOURCE_ATTRIBUTES, then the service and the pod identity from the downward API. */
export function resourceAttributes(identity: PodIdentity, extra: Readonly<Record<string, string>>, serviceName: string): Attributes {
  const r: Record<string, string> = { ...extra, 'service.name': serviceName, 'service.version': VERSION };
  if (identity.namespace) r['k8s.namespace.name'] = identity.namespace;
  if (identity.pod) {
    r['k8s.pod.name'] = identity.pod;
    r['service.instance.id'] = identity.pod;
  }
  if (identity.serviceAccount) r['aigress.service_account'] = identity.serviceAccount;
  if (identity.workload) {
    r['aigress.workload'] = identity.workload;
    const [kind, name] = identity.workload.split('/', 2);
    const key = kind ? WORKLOAD_KINDS[kind] : undefined;
    if (key && name) r[key] = name;
  }
  return r;
}

export interface TelemetryOptions {
  config: TelemetryConfig;
  identity: PodIdentity;
  registry: Registry;
  log: Logger;
  /** Where `--audit-log stdout` writes: the operational log's stream, so lines never interleave. */
  stdout?: Writable;
}

/** Undefined when nothing is enabled: the pipeline then builds no telemetry processors. */
export async function createTelemetry(o: TelemetryOptions): Promise<TelemetryServices | undefined> {
  const { config } = o;
  if (!config.otlp && !config.audit) return undefined;
  const resource = resourceAttributes(o.identity, config.otlp?.resource ?? {}, config.otlp?.serviceName ?? 'aigress-proxy');
  // First: a file that cannot be opened stops the start before an exporter exists to be closed.
  const audit = config.audit ? auditSink(config.audit, o.stdout, { registry: o.registry, log: o.log }) : undefined;
  let otlp: TelemetryServices['otlp'];
  if (config.otlp) {
    const { OtlpExporter } = await import('./exporter.js');
    otlp = new OtlpExporter({ config: config.otlp, resource, registry: o.registry, log: o.log });
  }
  const t: TelemetryServices = {
    ...(otlp && { otlp }),
    ...(audit && { audit }),
    captureContent: config.captureContent,
    resource,
    // Called from the proxy's HTTP fronts: a telemetry failure must not break the refusal being written.
    refused: (r, c) => {
      try {
        recordRefusal(t, o.identity, r, c);
      } catch (err) {
        o.log.warn({ err: errorMessage(err), status: r.status }, 'telemetry of a refused request failed');
      }
    },
  };
  return t;
}
