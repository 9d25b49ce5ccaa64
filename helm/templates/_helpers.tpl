{{/*
Names, labels, images and the value checks shared by every template.
*/}}

{{/* Chart name, overridable. */}}
{{- define "worker-sync.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Fully qualified name: release-chart, or the release name when it already holds the chart name. 63 chars. */}}
{{- define "worker-sync.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* A name derived from the full name: (dict "ctx" $ "suffix" "grafana"). Keeps the suffix whole. */}}
{{- define "worker-sync.componentName" -}}
{{- $base := include "worker-sync.fullname" .ctx | trunc (int (sub 62 (len .suffix))) | trimSuffix "-" -}}
{{- printf "%s-%s" $base .suffix -}}
{{- end -}}

{{- define "worker-sync.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels on every object (Bitnami style). */}}
{{- define "worker-sync.labels" -}}
helm.sh/chart: {{ include "worker-sync.chart" . }}
{{ include "worker-sync.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: worker-sync
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The immutable subset used in selectors. */}}
{{- define "worker-sync.selectorLabels" -}}
app.kubernetes.io/name: {{ include "worker-sync.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels plus a component: (dict "ctx" $ "component" "grafana"). */}}
{{- define "worker-sync.componentLabels" -}}
{{ include "worker-sync.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "worker-sync.componentSelectorLabels" -}}
{{ include "worker-sync.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Common metadata block: (dict "ctx" $ "name" "x" "component" "y" "labels" dict "annotations" dict). */}}
{{- define "worker-sync.metadata" -}}
name: {{ .name }}
namespace: {{ .ctx.Release.Namespace }}
labels:
  {{- include "worker-sync.componentLabels" (dict "ctx" .ctx "component" .component) | nindent 2 }}
  {{- with .labels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- $annotations := merge (deepCopy (.annotations | default dict)) (deepCopy .ctx.Values.commonAnnotations) }}
{{- with $annotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "worker-sync.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "worker-sync.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Image reference from an image block: (dict "image" .Values.image "default" .Chart.AppVersion). */}}
{{- define "worker-sync.imageRef" -}}
{{- $repo := .image.repository -}}
{{- if .image.registry }}{{ $repo = printf "%s/%s" .image.registry .image.repository }}{{ end -}}
{{- if .image.digest -}}
{{- printf "%s@%s" $repo .image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (toString (default .default .image.tag)) -}}
{{- end -}}
{{- end -}}

{{- define "worker-sync.image" -}}
{{- include "worker-sync.imageRef" (dict "image" .Values.image "default" .Chart.AppVersion) -}}
{{- end -}}

{{/* `imagePullSecrets:` of the pod spec, or nothing. */}}
{{- define "worker-sync.imagePullSecrets" -}}
{{- with .Values.image.pullSecrets -}}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end -}}
{{- end -}}

{{/* Container security context: the seed's keys without the chart switch and the pod-level fsGroup. */}}
{{- define "worker-sync.containerSecurityContext" -}}
{{- if .Values.securityContext.enabled -}}
{{- toYaml (omit .Values.securityContext "enabled" "fsGroup") -}}
{{- else -}}
{}
{{- end -}}
{{- end -}}

{{- define "worker-sync.podSecurityContext" -}}
{{- if .Values.podSecurityContext.enabled -}}
{{- toYaml (omit .Values.podSecurityContext "enabled") -}}
{{- else -}}
{}
{{- end -}}
{{- end -}}

{{/* Name of the chart's Secret (the seed's `worker-sync-secret`). */}}
{{- define "worker-sync.secretName" -}}
{{- include "worker-sync.componentName" (dict "ctx" . "suffix" "secret") -}}
{{- end -}}

{{- define "worker-sync.configMapName" -}}
{{- include "worker-sync.componentName" (dict "ctx" . "suffix" "config") -}}
{{- end -}}

{{/* "true" when the chart runs its own Redis for GCS fault tolerance. */}}
{{- define "worker-sync.redis.bundled" -}}
{{- if and .Values.gcsFaultTolerance.enabled .Values.redis.enabled (not .Values.gcsFaultTolerance.redisAddress) }}true{{ end -}}
{{- end -}}

{{/* Name of the Secret and key holding the Redis password GCS uses; empty name without a password. */}}
{{- define "worker-sync.redis.secretName" -}}
{{- if .Values.gcsFaultTolerance.redisAddress -}}
{{- .Values.gcsFaultTolerance.redisPassword.existingSecret -}}
{{- else if .Values.redis.auth.existingSecret -}}
{{- .Values.redis.auth.existingSecret -}}
{{- else -}}
{{- include "worker-sync.secretName" . -}}
{{- end -}}
{{- end -}}

{{- define "worker-sync.redis.secretKey" -}}
{{- if .Values.gcsFaultTolerance.redisAddress -}}
{{- .Values.gcsFaultTolerance.redisPassword.secretKey -}}
{{- else if .Values.redis.auth.existingSecret -}}
{{- .Values.redis.auth.secretKey -}}
{{- else -}}
redis-password
{{- end -}}
{{- end -}}

{{- define "worker-sync.redis.address" -}}
{{- if .Values.gcsFaultTolerance.redisAddress -}}
{{- .Values.gcsFaultTolerance.redisAddress -}}
{{- else -}}
{{- printf "%s:6379" (include "worker-sync.componentName" (dict "ctx" . "suffix" "redis")) -}}
{{- end -}}
{{- end -}}

{{- define "worker-sync.grafana.secretName" -}}
{{- default (include "worker-sync.secretName" .) .Values.grafana.existingSecret -}}
{{- end -}}

{{- define "worker-sync.grafana.secretKey" -}}
{{- if .Values.grafana.existingSecret -}}
{{- .Values.grafana.secretKeys.adminPassword -}}
{{- else -}}
grafana-admin-password
{{- end -}}
{{- end -}}

{{/* `https` when the supervisor's port speaks TLS (service.tls), else `http`. */}}
{{- define "worker-sync.httpScheme" -}}
{{- ternary "https" "http" (and .Values.service.tls.enabled true) -}}
{{- end -}}

{{/* The Service's DNS name, which a TLS certificate of the supervisor must carry. */}}
{{- define "worker-sync.serviceHost" -}}
{{- printf "%s.%s.svc" (include "worker-sync.fullname" .) .Release.Namespace -}}
{{- end -}}

{{/* URL of the supervisor inside the cluster. */}}
{{- define "worker-sync.supervisorUrl" -}}
{{- printf "%s://%s:%v" (include "worker-sync.httpScheme" .) (include "worker-sync.serviceHost" .) .Values.service.ports.http -}}
{{- end -}}

{{/*
Revision of the Ray pods: a hash of what the pods and the supervisor in them depend on, the pod annotation
`worker-sync/revision` (so `upgradeStrategy: Recreate` replaces the pods when it changes, and the new
supervisor reads a fresh ConfigMap). Left out, so that they never recreate the cluster: how many workers run
(`replicaCount`, `autoscaling.*`, `worker.replicas`/`minReplicas`/`maxReplicas`: the autoscaler's and
KubeRay's business) and the log level (passed to the supervisor on its command line, see rayRevision).
*/}}
{{- define "worker-sync.podRevision" -}}
{{- $config := omit (include "worker-sync.configYaml" . | fromYaml) "log_level" -}}
{{- $inputs := dict
  "config" $config
  "image" (include "worker-sync.image" .)
  "head" .Values.head "worker" (omit .Values.worker "replicas" "minReplicas" "maxReplicas")
  "ray" (omit .Values.ray "job")
  "databases" .Values.databases "auth" .Values.auth
  "gcs" .Values.gcsFaultTolerance "redisAuth" .Values.redis.auth
  "securityContext" .Values.securityContext "podSecurityContext" .Values.podSecurityContext
  "persistence" .Values.persistence "service" .Values.service -}}
{{- toJson $inputs | sha256sum | trunc 10 -}}
{{- end -}}

{{/*
Revision of the supervisor: the pods' revision and the log level. It is the suffix of the RayJob's name, so
an upgrade that changes either submits a fresh `run --detached`, which replaces the supervisor (its identity
covers the config and `--log-level`); a log-level change alone replaces only the supervisor, not the pods.
*/}}
{{- define "worker-sync.rayRevision" -}}
{{- printf "%s/%s" (include "worker-sync.podRevision" .) .Values.logLevel | sha256sum | trunc 10 -}}
{{- end -}}

{{/*
Addresses of the Kubernetes API (JSON list of CIDRs): networkPolicy.kubeApiCidrs, else the `kubernetes`
Endpoints of the `default` namespace as a live install sees them (lookup), else none (an offline render).
*/}}
{{- define "worker-sync.kubeApiCidrs" -}}
{{- $cidrs := .Values.networkPolicy.kubeApiCidrs | default list -}}
{{- if not $cidrs -}}
{{- $endpoints := lookup "v1" "Endpoints" "default" "kubernetes" | default dict -}}
{{- range $subset := $endpoints.subsets | default list -}}
{{- range $address := $subset.addresses | default list -}}
{{- $cidrs = append $cidrs (printf "%s/%s" $address.ip (ternary "128" "32" (contains ":" $address.ip))) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- toJson $cidrs -}}
{{- end -}}

{{/* Fail early, with the key to fix, on values the schema cannot express. */}}
{{- define "worker-sync.validateValues" -}}
{{- $errors := list -}}
{{- range $key := list "databases" "http" "log_level" -}}
{{- if hasKey ($.Values.config | default dict) $key -}}
{{- $errors = append $errors (printf "config.%s: set by the chart (from databases.*, service.* and logLevel); remove it from `config`" $key) -}}
{{- end -}}
{{- end -}}
{{- $supervisor := (.Values.config | default dict).supervisor | default dict -}}
{{- range $key := list "ray_address" "state_dir" "actor_cpus" "actor_memory_bytes" -}}
{{- if hasKey $supervisor $key -}}
{{- $errors = append $errors (printf "config.supervisor.%s: set by the chart (`auto`, a folder on the persistence volume, actors.cpus and actors.memory); remove it from `config`" $key) -}}
{{- end -}}
{{- end -}}
{{- $audit := (.Values.config | default dict).audit | default dict -}}
{{- range $key := list "signing_key_file" "signing_key_env" "encryption_key_file" "checkpoint_export_dir" -}}
{{- if hasKey $audit $key -}}
{{- $errors = append $errors (printf "config.audit.%s: set by the chart (from auth.* and persistence.*); remove it from `config`" $key) -}}
{{- end -}}
{{- end -}}
{{- range $engine := list "postgresql" "mysql" "mongodb" -}}
{{- $db := index $.Values.databases $engine -}}
{{- if and $db.enabled (has $db.tls.mode (list "verify-ca" "verify-full")) (not $db.tls.existingSecret) -}}
{{- $errors = append $errors (printf "databases.%s.tls.mode `%s` checks the server certificate: set databases.%s.tls.existingSecret to a Secret holding the CA" $engine $db.tls.mode $engine) -}}
{{- end -}}
{{- if and $db.tls.secretKeys.cert (not $db.tls.secretKeys.key) -}}
{{- $errors = append $errors (printf "databases.%s.tls.secretKeys: a client certificate (`cert`) needs its `key`" $engine) -}}
{{- end -}}
{{- end -}}
{{- if and .Values.service.tls.enabled (not .Values.service.tls.existingSecret) -}}
{{- $errors = append $errors "service.tls.existingSecret: the Secret with the HTTP port's certificate and key is required when service.tls.enabled is true" -}}
{{- end -}}
{{- if and .Values.ray.tls.enabled (not .Values.ray.tls.existingSecret) -}}
{{- $errors = append $errors "ray.tls.existingSecret: the Secret with Ray's certificate, key and CA is required when ray.tls.enabled is true" -}}
{{- end -}}
{{- with .Values.head.rayStartParams.resources -}}
{{- if not (contains "worker-sync-supervisor" (toString .)) -}}
{{- $errors = append $errors "head.rayStartParams.resources: the head must also offer `\"worker-sync-supervisor\": 1` (it places the detached supervisor)" -}}
{{- end -}}
{{- end -}}
{{- if and .Values.gcsFaultTolerance.enabled (not .Values.gcsFaultTolerance.redisAddress) (not .Values.redis.enabled) -}}
{{- $errors = append $errors "gcsFaultTolerance.enabled needs a Redis: set gcsFaultTolerance.redisAddress or redis.enabled=true" -}}
{{- end -}}
{{- if .Values.autoscaling.enabled -}}
{{- $min := int (include "worker-sync.worker.minReplicas" .) -}}
{{- $max := int (include "worker-sync.worker.maxReplicas" .) -}}
{{- $replicas := int (include "worker-sync.worker.replicas" .) -}}
{{- if gt $min $max -}}
{{- $errors = append $errors (printf "autoscaling: minReplicas (%d) is above maxReplicas (%d)" $min $max) -}}
{{- end -}}
{{- if or (lt $replicas $min) (gt $replicas $max) -}}
{{- $errors = append $errors (printf "replicaCount (%d) must lie between minReplicas (%d) and maxReplicas (%d)" $replicas $min $max) -}}
{{- end -}}
{{- end -}}
{{- if and .Values.cronJobs.backup.enabled .Values.cronJobs.backup.s3.enabled (not .Values.cronJobs.backup.s3.bucket) -}}
{{- $errors = append $errors "cronJobs.backup.s3.bucket: required when cronJobs.backup.s3.enabled is true" -}}
{{- end -}}
{{- if and (include "worker-sync.backup.mountsState" .) (has "ReadWriteOncePod" (.Values.persistence.accessModes | default list)) -}}
{{- $errors = append $errors "cronJobs.backup.positions.enabled: persistence.accessModes ReadWriteOncePod lets only the head mount the state volume, so the backup cannot read the positions; use ReadWriteOnce (or ReadWriteMany), or set cronJobs.backup.positions.enabled=false" -}}
{{- end -}}
{{- if and (include "worker-sync.jobMountsState" (dict "ctx" . "job" .Values.cronJobs.verify)) (has "ReadWriteOncePod" (.Values.persistence.accessModes | default list)) -}}
{{- $errors = append $errors "cronJobs.verify.positions.enabled: persistence.accessModes ReadWriteOncePod lets only the head mount the state volume, so verify cannot read the committed positions; use ReadWriteOnce (or ReadWriteMany), or set cronJobs.verify.positions.enabled=false" -}}
{{- end -}}
{{- if and .Values.grafana.enabled (not .Values.prometheus.enabled) (not .Values.grafana.datasourceUrl) -}}
{{- $errors = append $errors "grafana.datasourceUrl: required when grafana.enabled is true and prometheus.enabled is false" -}}
{{- end -}}
{{- if and .Values.ingress.enabled (not .Values.ingress.hosts) -}}
{{- $errors = append $errors "ingress.hosts: at least one host is needed when ingress.enabled is true" -}}
{{- end -}}
{{- if not .Values.auth.allowGenerated -}}
{{- $generated := list -}}
{{- if not .Values.auth.existingSecret -}}
{{- if not .Values.auth.auditSigningKey }}{{ $generated = append $generated "auth.auditSigningKey" }}{{ end -}}
{{- if not .Values.auth.httpToken }}{{ $generated = append $generated "auth.httpToken" }}{{ end -}}
{{- if and (include "worker-sync.needsEncryptionKey" .) (not .Values.auth.auditEncryptionKey) }}{{ $generated = append $generated "auth.auditEncryptionKey" }}{{ end -}}
{{- end -}}
{{- if and .Values.grafana.enabled (not .Values.grafana.existingSecret) (not .Values.grafana.adminPassword) }}{{ $generated = append $generated "grafana.adminPassword" }}{{ end -}}
{{- if and (include "worker-sync.redis.bundled" .) (not .Values.redis.auth.existingSecret) (not .Values.redis.auth.password) }}{{ $generated = append $generated "redis.auth.password" }}{{ end -}}
{{- if $generated -}}
{{- $errors = append $errors (printf "auth.allowGenerated is false but %s would be generated (and generated anew by every offline render): bring each from an existing Secret (auth.existingSecret, grafana.existingSecret, redis.auth.existingSecret)" (join ", " $generated)) -}}
{{- end -}}
{{- end -}}
{{- $workerMetricsPort := index .Values.worker.rayStartParams "metrics-export-port" | default "8080" | int -}}
{{- if ne $workerMetricsPort (int (include "worker-sync.rayMetricsPort" .)) -}}
{{- $errors = append $errors (printf "worker.rayStartParams.metrics-export-port (%d) must equal head.rayStartParams.metrics-export-port (%s): Ray's metrics are scraped on one port" $workerMetricsPort (include "worker-sync.rayMetricsPort" .)) -}}
{{- end -}}
{{- $workerCpus := index (include "worker-sync.worker.rayStartParams" . | fromYaml) "num-cpus" -}}
{{- if and $workerCpus (gt (float64 .Values.actors.cpus) (float64 $workerCpus)) -}}
{{- $errors = append $errors (printf "actors.cpus (%v) is more than a worker offers (num-cpus %v): no actor could ever be placed; lower it or give the workers more CPU" .Values.actors.cpus $workerCpus) -}}
{{- end -}}
{{- $queueThreshold := .Values.alerts.queueBacklog.threshold -}}
{{- if not (kindIs "invalid" $queueThreshold) -}}
{{- $cap := int (include "worker-sync.queueMaxBatches" .) -}}
{{- if ge (float64 $queueThreshold) (float64 $cap) -}}
{{- $errors = append $errors (printf "alerts.queueBacklog.threshold (%v) can never be passed: queue_depth stops at config.supervisor.queue_max_batches (%d); set it below, or null to fire at the cap" $queueThreshold $cap) -}}
{{- end -}}
{{- end -}}
{{- if $errors -}}
{{- fail (printf "\n\nVALUES VALIDATION:\n  - %s" (join "\n  - " $errors)) -}}
{{- end -}}
{{- end -}}
