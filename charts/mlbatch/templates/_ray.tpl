{{/*
One Ray pod template (head or worker): include with
(dict "ctx" $ "image" <image> "codeVersion" <tag> "role" "head"|"worker"
"spec" .Values.ray.head|worker).
KubeRay supplies the `ray start` command; we supply security, storage and probes (ours
replace KubeRay's default probes, which need the dashboard and wget).
*/}}
{{- define "mlbatch.rayPodTemplate" -}}
{{- $ctx := .ctx -}}
metadata:
  labels:
    {{- include "mlbatch.componentLabels" (dict "ctx" $ctx "component" "ray") | nindent 4 }}
    mlbatch.io/ray-node: {{ .role }}
spec:
  serviceAccountName: {{ include "mlbatch.stageServiceAccountName" $ctx }}
  automountServiceAccountToken: false
  securityContext:
    {{- include "mlbatch.podSecurityContext" $ctx | nindent 4 }}
  {{- with .spec.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .spec.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: {{ printf "ray-%s" .role }}
      image: {{ .image | quote }}
      imagePullPolicy: {{ $ctx.Values.image.pullPolicy }}
      env:
        {{- include "mlbatch.storageEnv" $ctx | nindent 8 }}
        # The train stage compares it with its own on connect: a cluster left running old
        # code (KubeRay keeps pods across template changes) is a clear error, not drift.
        - name: MLBATCH_CODE_VERSION
          value: {{ .codeVersion | quote }}
      {{- with include "mlbatch.credentialsEnvFrom" $ctx }}{{ . | nindent 6 }}{{ end }}
      {{- if eq .role "head" }}
      ports:
        - name: gcs
          containerPort: 6379
        - name: client
          containerPort: 10001
      readinessProbe:
        tcpSocket:
          port: client
        periodSeconds: 10
      livenessProbe:
        tcpSocket:
          port: gcs
        initialDelaySeconds: 30
        periodSeconds: 20
        failureThreshold: 6
      {{- else }}
      readinessProbe:
        tcpSocket:
          port: 6380
        periodSeconds: 10
      livenessProbe:
        tcpSocket:
          port: 6380
        initialDelaySeconds: 30
        periodSeconds: 20
        failureThreshold: 6
      {{- end }}
      securityContext:
        {{- include "mlbatch.containerSecurityContext" $ctx | nindent 8 }}
      resources:
        {{- toYaml .spec.resources | nindent 8 }}
      volumeMounts:
        - name: tmp
          mountPath: /tmp
        - name: dshm
          mountPath: /dev/shm
  volumes:
    - name: tmp
      emptyDir:
        sizeLimit: {{ $ctx.Values.ray.tmpSizeLimit }}
    - name: dshm
      emptyDir:
        medium: Memory
        sizeLimit: {{ $ctx.Values.ray.shmSize }}
{{- end }}
