// The subset of the Kubernetes Pod shape that injection reads or writes. Every other field is carried through
// untouched (index signatures), so a pod from a newer API server loses nothing on the way.

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: Record<string, unknown>;
}

export interface VolumeMount {
  name: string;
  mountPath: string;
  readOnly?: boolean;
  [field: string]: unknown;
}

export interface SecurityContext {
  runAsUser?: number;
  runAsGroup?: number;
  runAsNonRoot?: boolean;
  privileged?: boolean;
  capabilities?: { add?: string[]; drop?: string[]; [field: string]: unknown };
  [field: string]: unknown;
}

export interface Container {
  name: string;
  image?: string;
  env?: EnvVar[];
  envFrom?: unknown[];
  volumeMounts?: VolumeMount[];
  securityContext?: SecurityContext;
  restartPolicy?: string;
  [field: string]: unknown;
}

export interface Volume {
  name: string;
  [field: string]: unknown;
}

export interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  volumes?: Volume[];
  hostNetwork?: boolean;
  securityContext?: SecurityContext;
  serviceAccountName?: string;
  restartPolicy?: string;
  os?: { name?: string };
  [field: string]: unknown;
}

export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  [field: string]: unknown;
}

export interface Pod {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
  spec: PodSpec;
  [field: string]: unknown;
}

/** RFC 6902 operations injection emits. It never removes anything, so `remove`/`move`/`copy` never appear. */
export interface PatchOperation {
  op: 'add' | 'replace';
  path: string;
  value: unknown;
}
