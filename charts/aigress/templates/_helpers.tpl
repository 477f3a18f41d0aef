{{/*
Names are fixed, not derived from the release name: the control plane patches the caBundle of the
MutatingWebhookConfiguration `aigress` by name, serves under the Service `aigress` (its serving certificate's DNS
names), and the ClusterRole/ClusterRoleBinding are cluster-wide. One install per cluster.
*/}}
{{- define "aigress.name" -}}aigress{{- end -}}

{{- define "aigress.labels" -}}
app.kubernetes.io/name: aigress
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: aigress
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* What the Deployment, Service, PDB and anti-affinity select on: stable across upgrades. */}}
{{- define "aigress.selectorLabels" -}}
app.kubernetes.io/name: aigress
app.kubernetes.io/component: control-plane
{{- end -}}

{{/* repository@digest when image.digest is set (the tag is then ignored), else repository:tag. */}}
{{- define "aigress.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{/*
The injected containers' image: injection.image when its repository is set (repository@digest, else
repository:tag with the tag defaulting like image.tag), else the control plane's own image.
*/}}
{{- define "aigress.injectionImage" -}}
{{- $i := .Values.injection.image | default dict -}}
{{- if not $i.repository -}}
{{ include "aigress.image" . }}
{{- else if $i.digest -}}
{{ $i.repository }}@{{ $i.digest }}
{{- else -}}
{{ $i.repository }}:{{ $i.tag | default .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{/* The cert-manager Certificate (and its Secret) holding the CA, when certManager.enabled. */}}
{{- define "aigress.certManagerCaName" -}}aigress-ca{{- end -}}

{{/* The control plane's config file: `aigress webhook --config` (webhook/config.ts; unknown fields are errors). */}}
{{- define "aigress.config" -}}
injection:
  image: {{ include "aigress.injectionImage" . | quote }}
  imagePullPolicy: {{ (.Values.injection.image | default dict).pullPolicy | default .Values.image.pullPolicy }}
  nativeSidecar: {{ .Values.injection.nativeSidecar | default "auto" }}
  kubernetesVersion: {{ .Values.injection.kubernetesVersion | default .Capabilities.KubeVersion.Version | quote }}
  controlPlane:
    address: {{ printf "https://%s.%s.svc" (include "aigress.name" .) .Release.Namespace | quote }}
    namespace: {{ .Release.Namespace | quote }}
  {{- with .Values.injection.proxy }}
  proxy:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.injection.init }}
  init:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.injection.budgets }}
  budgets:
    {{- $b := deepCopy . }}
    {{- if and $.Values.redis.enabled (not $b.redisUrl) }}
    {{- /* the chart's own Redis (templates/redis.yaml) when no other is named */}}
    {{- $_ := set $b "redisUrl" (printf "redis://%s-redis.%s.svc:6379" (include "aigress.name" $) $.Release.Namespace) }}
    {{- end }}
    {{- toYaml $b | nindent 4 }}
  {{- end }}
  {{- with .Values.injection.capture }}
  capture:
    {{- toYaml . | nindent 4 }}
  {{- end }}
server:
  port: 8443
{{- end -}}

{{/* The cluster default EgressPolicy: `aigress webhook --default-policy`. */}}
{{- define "aigress.defaultPolicy" -}}
apiVersion: aigress.io/v1alpha1
kind: EgressPolicy
metadata:
  name: cluster-default
spec:
  {{- toYaml .Values.defaultPolicy | nindent 2 }}
{{- end -}}
