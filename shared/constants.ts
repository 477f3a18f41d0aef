// Names and numbers other parts and outside checks rely on (see ARCHITECTURE.md, "Contracts").
// Change one here and you change a contract: update the architecture doc, the chart and the docs with it.

export const VERSION = '0.1.0';

export const LABEL_INJECT = 'aigress.io/inject';
export const ANNOTATION_PREFIX = 'aigress.io/';
export const ANNOTATION_INJECT = 'aigress.io/inject';
export const ANNOTATION_STATUS = 'aigress.io/status';
export const ANNOTATION_EXCLUDE_PORTS = 'aigress.io/exclude-outbound-ports';
export const ANNOTATION_EXCLUDE_CIDRS = 'aigress.io/exclude-outbound-cidrs';
export const ANNOTATION_INCLUDE_PORTS = 'aigress.io/include-outbound-ports';
export const ANNOTATION_PROXY_CPU = 'aigress.io/proxy-cpu';
export const ANNOTATION_PROXY_MEMORY = 'aigress.io/proxy-memory';
export const ANNOTATION_POLICY = 'aigress.io/policy';

export const INIT_CONTAINER_NAME = 'aigress-init';
export const PROXY_CONTAINER_NAME = 'aigress-proxy';

export const PROXY_UID = 1500;
export const PROXY_GID = 1500;
export const CAPTURE_PORT = 14001;
export const ADMIN_PORT = 14020;
export const WEBHOOK_PORT = 8443;
export const DEFAULT_INCLUDE_PORTS: readonly number[] = [80, 443];

export const CA_BUNDLE_DIR = '/var/run/aigress/ca';
export const CA_BUNDLE_FILE = 'bundle.pem';
export const JAVA_TRUSTSTORE_FILE = 'truststore.p12';
/** Java's conventional default password for trust stores; it protects nothing secret (public certificates only). */
export const JAVA_TRUSTSTORE_PASSWORD = 'changeit';
export const TOKEN_DIR = '/var/run/secrets/aigress.io';
export const TOKEN_FILE = 'token';
export const TOKEN_AUDIENCE = 'aigress';

export const EGRESS_POLICY_API_VERSION = 'aigress.io/v1alpha1';
export const EGRESS_POLICY_KIND = 'EgressPolicy';

/** Namespaces never injected, whatever their labels say. The control plane's own namespace is added from config. */
export const SYSTEM_NAMESPACES: readonly string[] = ['kube-system', 'kube-public', 'kube-node-lease'];

/** The proxy's identity env, set by the injected spec (downward API, owner references) and read by the proxy. */
export const ENV_POD_NAME = 'AIGRESS_POD_NAME';
export const ENV_POD_NAMESPACE = 'AIGRESS_POD_NAMESPACE';
export const ENV_SERVICE_ACCOUNT = 'AIGRESS_SERVICE_ACCOUNT';
/** The owning workload as `kind/name` (`deployment/checkout`), derived from owner references at injection. */
export const ENV_WORKLOAD = 'AIGRESS_WORKLOAD';
/** PEM of the control plane's CA (public), which cluster-mode proxies verify the control plane with. */
export const ENV_CONTROL_PLANE_CA = 'AIGRESS_CONTROL_PLANE_CA';

/** The UIDs service meshes run their proxies as (istio-init's and Linkerd proxy-init's defaults). */
export const ISTIO_PROXY_UID = 1337;
export const LINKERD_PROXY_UID = 2102;

/** Key names of the certificate files in a `--ca-dir`: a cert-manager / kubernetes.io/tls Secret's. */
export const CA_CERT_FILE = 'tls.crt';
export const CA_KEY_FILE = 'tls.key';
/** Also accepted in a proxy `--ca-dir` (the names it used first). */
export const CA_CERT_FILE_ALT = 'ca.crt';
export const CA_KEY_FILE_ALT = 'ca.key';
