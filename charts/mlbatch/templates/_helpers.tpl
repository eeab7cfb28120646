{{/*
The six standard helpers (as `helm create` and argo-helm write them), then mlbatch's own.
*/}}

{{/* Chart name, overridable. */}}
{{- define "mlbatch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name prefix of every object: <release>-<chart>, or the release name when it already
contains the chart name. Truncated to 63 characters (the DNS label limit); objects that add
a suffix use "mlbatch.fullname" trimmed further where the suffix could overflow.
*/}}
{{- define "mlbatch.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Chart name and version, for the helm.sh/chart label. */}}
{{- define "mlbatch.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. The version label is the code version the images carry. */}}
{{- define "mlbatch.labels" -}}
helm.sh/chart: {{ include "mlbatch.chart" . }}
{{ include "mlbatch.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mlbatch
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels (immutable in StatefulSets: never add to them). */}}
{{- define "mlbatch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mlbatch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The controller's ServiceAccount. */}}
{{- define "mlbatch.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (printf "%s-controller" (include "mlbatch.fullname" . | trunc 52 | trimSuffix "-")) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* ---- mlbatch's own helpers ---- */}}

{{/* Labels and selector labels of one component: include with (dict "ctx" $ "component" "x"). */}}
{{- define "mlbatch.componentLabels" -}}
{{ include "mlbatch.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "mlbatch.componentSelectorLabels" -}}
{{ include "mlbatch.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Name of one component's object: <fullname>-<suffix>, kept within 63 characters. */}}
{{- define "mlbatch.componentName" -}}
{{- $suffix := .suffix }}
{{- printf "%s-%s" (include "mlbatch.fullname" .ctx | trunc (int (sub 62 (len $suffix))) | trimSuffix "-") $suffix }}
{{- end }}

{{/*
A StatefulSet's name: <fullname>-<suffix>, at most 52 characters. Its pods carry
controller-revision-hash=<name>-<10-character hash>, a label value (63 at most): a longer
name makes every pod creation fail.
*/}}
{{- define "mlbatch.statefulSetName" -}}
{{- $suffix := .suffix }}
{{- printf "%s-%s" (include "mlbatch.fullname" .ctx | trunc (int (sub 51 (len $suffix))) | trimSuffix "-") $suffix }}
{{- end }}

{{/* The CronJob: its Jobs add an 11-character suffix, so at most 52 characters. */}}
{{- define "mlbatch.cronJobName" -}}
{{- include "mlbatch.fullname" . | trunc 52 | trimSuffix "-" }}
{{- end }}

{{/* The stages' ServiceAccount: no API token, workload identity annotations. */}}
{{- define "mlbatch.stageServiceAccountName" -}}
{{- default (include "mlbatch.componentName" (dict "ctx" . "suffix" "stage")) .Values.serviceAccount.stageName }}
{{- end }}

{{- define "mlbatch.settingsConfigMapName" -}}
{{ include "mlbatch.componentName" (dict "ctx" . "suffix" "settings") }}
{{- end }}

{{/* The Secret holding AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (secret mode only). */}}
{{- define "mlbatch.secretName" -}}
{{- default (include "mlbatch.componentName" (dict "ctx" . "suffix" "credentials")) .Values.credentials.existingSecret }}
{{- end }}

{{- define "mlbatch.s3ServiceName" -}}
{{ include "mlbatch.componentName" (dict "ctx" . "suffix" "s3") }}
{{- end }}

{{/*
The RayCluster's name carries a hash of the train image: KubeRay (1.4, 1.5) does not
recreate Ray pods when their template changes, so a new train image must be a new
RayCluster, or the train stage would talk to the old code. KubeRay derives
"<name>-head-svc" and pod names from it: at most 44 characters.
*/}}
{{- define "mlbatch.rayClusterName" -}}
{{- printf "%s-ray-%s" (include "mlbatch.fullname" . | trunc 33 | trimSuffix "-") (include "mlbatch.rayImage" . | sha256sum | trunc 6) }}
{{- end }}

{{/* The image of the Ray pods: the train stage's, tagged with its code version. */}}
{{- define "mlbatch.rayImage" -}}
{{- $tag := required "ray.imageTag is required: the train stage's code version (python -m mlbatch.codeversion train)" .Values.ray.imageTag }}
{{- if eq $tag "latest" }}{{ fail "ray.imageTag must be the code version, never latest" }}{{ end }}
{{- printf "%s-train:%s" .Values.image.repository $tag }}
{{- end }}

{{/* True (non-empty) when a RayCluster is rendered: enabled and the CRD is served. */}}
{{- define "mlbatch.rayRendered" -}}
{{- if and .Values.ray.enabled (.Capabilities.APIVersions.Has "ray.io/v1") }}true{{ end }}
{{- end }}

{{/*
The S3 endpoint pods use: the external one when set, else the in-cluster SeaweedFS,
else empty (AWS S3, resolved by the SDK from the region).
*/}}
{{- define "mlbatch.s3Endpoint" -}}
{{- if .Values.storage.endpoint }}
{{- .Values.storage.endpoint }}
{{- else if .Values.seaweedfs.enabled }}
{{- printf "http://%s.%s.svc:%d" (include "mlbatch.s3ServiceName" .) .Release.Namespace (int .Values.seaweedfs.service.port) }}
{{- end }}
{{- end }}

{{/* An mlbatch image: include with (dict "ctx" $ "component" "train"). Never `latest`. */}}
{{- define "mlbatch.image" -}}
{{- $tag := required "image.tag is required: the code version the images were built with (python -m mlbatch.codeversion)" .ctx.Values.image.tag }}
{{- if eq $tag "latest" }}
{{- fail "image.tag must be the code version, never latest" }}
{{- end }}
{{- printf "%s-%s:%s" .ctx.Values.image.repository .component $tag }}
{{- end }}

{{/*
Checks on combinations the schema cannot express; included by the templates every
configuration renders (the ConfigMap), so a bad combination fails the install early.
*/}}
{{- define "mlbatch.validate" -}}
{{- if not .Values.pipeline.spec }}
{{- fail "pipeline.spec is required: the pipeline spec YAML the runs use (--set-file pipeline.spec=examples/flights.yaml)" }}
{{- end }}
{{- if and .Values.seaweedfs.enabled .Values.storage.endpoint }}
{{- fail "storage.endpoint is set and seaweedfs.enabled is true: choose one (seaweedfs.enabled=false for an external endpoint)" }}
{{- end }}
{{- if eq .Values.credentials.mode "secret" }}
{{- if and (not .Values.seaweedfs.enabled) (not .Values.credentials.existingSecret) }}
{{- fail "credentials.existingSecret is required for an external S3 endpoint in secret mode (generated keys only fit the in-cluster SeaweedFS)" }}
{{- end }}
{{- else }}
{{- if .Values.seaweedfs.enabled }}
{{- fail "credentials.mode=serviceAccount (workload identity) needs an external endpoint: set seaweedfs.enabled=false" }}
{{- end }}
{{- if .Values.credentials.existingSecret }}
{{- fail "credentials.existingSecret is only used with credentials.mode=secret" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Pod Security "restricted", for every pod the chart renders. */}}
{{- define "mlbatch.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Pod Security "restricted" plus a read-only root, for every container. */}}
{{- define "mlbatch.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
privileged: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Storage settings from the ConfigMap (the endpoint is absent for AWS S3). */}}
{{- define "mlbatch.storageEnv" -}}
{{- $cm := include "mlbatch.settingsConfigMapName" . -}}
- name: AWS_ENDPOINT_URL
  valueFrom:
    configMapKeyRef:
      name: {{ $cm }}
      key: AWS_ENDPOINT_URL
      optional: true
- name: AWS_REGION
  valueFrom:
    configMapKeyRef:
      name: {{ $cm }}
      key: AWS_REGION
- name: AWS_DEFAULT_REGION
  valueFrom:
    configMapKeyRef:
      name: {{ $cm }}
      key: AWS_DEFAULT_REGION
- name: MLBATCH_BUCKET
  valueFrom:
    configMapKeyRef:
      name: {{ $cm }}
      key: MLBATCH_BUCKET
- name: HOME
  value: /tmp
{{- end }}

{{/* Credentials as env from the Secret, in secret mode only. */}}
{{- define "mlbatch.credentialsEnvFrom" -}}
{{- if eq .Values.credentials.mode "secret" -}}
envFrom:
  - secretRef:
      name: {{ include "mlbatch.secretName" . }}
{{- end }}
{{- end }}

{{/* The etl image the Dask scheduler and workers run: the etl stage's own code version. */}}
{{- define "mlbatch.daskImage" -}}
{{- $tag := required "dask.imageTag is required: the etl stage's code version (python -m mlbatch.codeversion etl)" .Values.dask.imageTag }}
{{- if eq $tag "latest" }}{{ fail "dask.imageTag must be the code version, never latest" }}{{ end }}
{{- printf "%s-etl:%s" .Values.image.repository $tag }}
{{- end }}

{{- define "mlbatch.daskSchedulerName" -}}
{{ include "mlbatch.componentName" (dict "ctx" . "suffix" "dask-scheduler") }}
{{- end }}

{{/* What the Dask pods write goes to /tmp: the root filesystem is read-only. */}}
{{- define "mlbatch.daskEnv" -}}
- name: TMPDIR
  value: /tmp
- name: DASK_TEMPORARY_DIRECTORY
  value: /tmp/dask
- name: PYTHONDONTWRITEBYTECODE
  value: "1"
{{- end }}
