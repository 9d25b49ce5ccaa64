{{/*
The Ray side: worker group sizes, `ray start` parameters and the autoscaling mapping.
*/}}

{{- define "worker-sync.worker.replicas" -}}
{{- if kindIs "invalid" .Values.worker.replicas -}}{{ .Values.replicaCount }}{{- else -}}{{ .Values.worker.replicas }}{{- end -}}
{{- end -}}

{{- define "worker-sync.worker.minReplicas" -}}
{{- if not (kindIs "invalid" .Values.worker.minReplicas) -}}{{ .Values.worker.minReplicas }}
{{- else if .Values.autoscaling.enabled -}}{{ .Values.autoscaling.minReplicas }}
{{- else -}}{{ include "worker-sync.worker.replicas" . }}{{- end -}}
{{- end -}}

{{- define "worker-sync.worker.maxReplicas" -}}
{{- if not (kindIs "invalid" .Values.worker.maxReplicas) -}}{{ .Values.worker.maxReplicas }}
{{- else if .Values.autoscaling.enabled -}}{{ .Values.autoscaling.maxReplicas }}
{{- else -}}{{ include "worker-sync.worker.replicas" . }}{{- end -}}
{{- end -}}

{{/* CPU quantity ("2", 1.5, "500m") in millicores. */}}
{{- define "worker-sync.cpuMillis" -}}
{{- $q := toString . -}}
{{- if hasSuffix "m" $q -}}{{ trimSuffix "m" $q | int64 }}{{- else -}}{{ mulf (float64 $q) 1000 | int64 }}{{- end -}}
{{- end -}}

{{/* Memory quantity ("4Gi", "512M", 1073741824) in bytes. */}}
{{- define "worker-sync.memoryBytes" -}}
{{- $q := toString . -}}
{{- $units := dict "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 "k" 1000 "K" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 -}}
{{- $bytes := -1.0 -}}
{{- range $suffix, $factor := $units -}}
{{- if hasSuffix $suffix $q -}}{{- $bytes = mulf (float64 (trimSuffix $suffix $q)) $factor -}}{{- end -}}
{{- end -}}
{{- if lt $bytes 0.0 -}}{{- $bytes = float64 $q -}}{{- end -}}
{{- $bytes | int64 -}}
{{- end -}}

{{/*
Worker `ray start` parameters. With autoscaling on, the seed's utilization targets cap the logical
CPUs and memory Ray may reserve on a worker (see values.yaml, "Auto-scaling"); explicit values win.
*/}}
{{- define "worker-sync.worker.rayStartParams" -}}
{{- $params := deepCopy (.Values.worker.rayStartParams | default dict) -}}
{{- $limits := (.Values.worker.resources | default dict).limits | default dict -}}
{{- if .Values.autoscaling.enabled -}}
{{- if and $limits.cpu (not (hasKey $params "num-cpus")) -}}
{{- $millis := int64 (include "worker-sync.cpuMillis" $limits.cpu) -}}
{{- $cpus := div (mul $millis (int64 .Values.autoscaling.targetCPUUtilizationPercentage)) 100000 -}}
{{- $_ := set $params "num-cpus" (toString (max 1 $cpus)) -}}
{{- end -}}
{{- if and $limits.memory (not (hasKey $params "memory")) -}}
{{- $bytes := int64 (include "worker-sync.memoryBytes" $limits.memory) -}}
{{- $_ := set $params "memory" (toString (div (mul $bytes (int64 .Values.autoscaling.targetMemoryUtilizationPercentage)) 100)) -}}
{{- end -}}
{{- end -}}
{{- $strings := dict -}}
{{- range $k, $v := $params -}}{{- $_ := set $strings $k (toString $v) -}}{{- end -}}
{{- toYaml $strings -}}
{{- end -}}

{{/*
Head `ray start` parameters. The head offers one unit of the custom resource `worker-sync-supervisor`, which
the detached supervisor actor asks for: Ray places it, and each of its restarts, on the head (where
`state_dir`, the checkpoint volume and the Service's port are). KubeRay passes the value to a shell, hence
the inner quotes (KubeRay's documented form).
*/}}
{{- define "worker-sync.head.rayStartParams" -}}
{{- $strings := dict "resources" `"{\"worker-sync-supervisor\": 1}"` -}}
{{- range $k, $v := .Values.head.rayStartParams -}}{{- $_ := set $strings $k (toString $v) -}}{{- end -}}
{{- toYaml $strings -}}
{{- end -}}

{{/* Environment of the Ray containers (head and workers). */}}
{{- define "worker-sync.rayEnv" -}}
{{- if eq .Values.ray.auth.mode "disabled" -}}
- name: RAY_AUTH_MODE
  value: disabled
{{- end -}}
{{- end -}}

{{- define "worker-sync.rayTlsDir" -}}/run/secrets/ray-tls{{- end -}}

{{/*
Ray's own TLS (ray.tls): the variables Ray reads to secure its gRPC channels, on every container that runs a
Ray process (head, workers, the autoscaler sidecar). The files come from the `ray-tls` volume.
*/}}
{{- define "worker-sync.rayTlsEnv" -}}
{{- if .Values.ray.tls.enabled -}}
{{- $dir := include "worker-sync.rayTlsDir" . -}}
- name: RAY_USE_TLS
  value: "1"
- name: RAY_TLS_SERVER_CERT
  value: {{ $dir }}/tls.crt
- name: RAY_TLS_SERVER_KEY
  value: {{ $dir }}/tls.key
- name: RAY_TLS_CA_CERT
  value: {{ $dir }}/ca.crt
{{- end -}}
{{- end -}}

{{/* Environment of the Ray pods' containers: rayEnv plus Ray's TLS. */}}
{{- define "worker-sync.rayPodEnv" -}}
{{- $parts := list -}}
{{- with include "worker-sync.rayEnv" . }}{{ $parts = append $parts . }}{{ end -}}
{{- with include "worker-sync.rayTlsEnv" . }}{{ $parts = append $parts . }}{{ end -}}
{{- join "\n" $parts -}}
{{- end -}}

{{/* The `ray-tls` volume (ray.tls): certificate, key and CA under fixed names. */}}
{{- define "worker-sync.rayTlsVolume" -}}
{{- if .Values.ray.tls.enabled -}}
- name: ray-tls
  secret:
    secretName: {{ .Values.ray.tls.existingSecret }}
    defaultMode: 288  # 0440: owner and group (fsGroup) may read
    items:
      - key: {{ .Values.ray.tls.secretKeys.cert }}
        path: tls.crt
      - key: {{ .Values.ray.tls.secretKeys.key }}
        path: tls.key
      - key: {{ .Values.ray.tls.secretKeys.ca }}
        path: ca.crt
{{- end -}}
{{- end -}}

{{- define "worker-sync.rayTlsVolumeMount" -}}
{{- if .Values.ray.tls.enabled -}}
- name: ray-tls
  mountPath: {{ include "worker-sync.rayTlsDir" . }}
  readOnly: true
{{- end -}}
{{- end -}}

{{/* Labels every Ray pod (head and workers) carries and nothing else does: what Ray's metrics are scraped by. */}}
{{- define "worker-sync.rayNodeSelectorLabels" -}}
{{ include "worker-sync.selectorLabels" . }}
worker-sync/ray-node: "true"
{{- end -}}

{{/* Port of Ray's metrics agent (`metrics-export-port`), the same on the head and the workers. */}}
{{- define "worker-sync.rayMetricsPort" -}}
{{- index .Values.head.rayStartParams "metrics-export-port" | default "8080" | int -}}
{{- end -}}

{{/* Pod-level fields shared by the head and worker pods. */}}
{{- define "worker-sync.rayPodSpecCommon" -}}
serviceAccountName: {{ include "worker-sync.serviceAccountName" . }}
securityContext:
  {{- include "worker-sync.podSecurityContext" . | nindent 2 }}
{{- with include "worker-sync.imagePullSecrets" . }}
{{ . }}
{{- end }}
{{- end -}}
