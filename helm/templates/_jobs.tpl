{{/*
Pod spec of the Worker-Sync one-shot containers (hook Jobs, CronJobs, helm tests).
(dict "ctx" $ "name" "init" "args" (list "init" ...) "env" list "volumes" list "volumeMounts" list "restartPolicy" "Never"
"affinity" dict "tolerations" list)
*/}}
{{- define "worker-sync.toolPodSpec" -}}
{{- $ctx := .ctx -}}
serviceAccountName: {{ include "worker-sync.serviceAccountName" $ctx }}
automountServiceAccountToken: false
restartPolicy: {{ .restartPolicy | default "Never" }}
securityContext:
  {{- include "worker-sync.podSecurityContext" $ctx | nindent 2 }}
{{- with include "worker-sync.imagePullSecrets" $ctx }}
{{ . }}
{{- end }}
containers:
  - name: {{ .name }}
    image: {{ include "worker-sync.image" $ctx | quote }}
    imagePullPolicy: {{ $ctx.Values.image.pullPolicy }}
    {{- with .command }}
    command:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    args:
      {{- toYaml .args | nindent 6 }}
    {{- with .env }}
    env:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    {{- with .envFrom }}
    envFrom:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    resources:
      {{- toYaml (.resources | default $ctx.Values.jobs.resources) | nindent 6 }}
    securityContext:
      {{- include "worker-sync.containerSecurityContext" $ctx | nindent 6 }}
    volumeMounts:
      {{- include "worker-sync.commonVolumeMounts" $ctx | nindent 6 }}
      {{- with .volumeMounts }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
volumes:
  {{- include "worker-sync.commonVolumes" $ctx | nindent 2 }}
  {{- with .volumes }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end -}}

{{/* "true" when the backup CronJob mounts the head's state volume (the committed positions). */}}
{{- define "worker-sync.backup.mountsState" -}}
{{- include "worker-sync.jobMountsState" (dict "ctx" . "job" .Values.cronJobs.backup) -}}
{{- end -}}

{{/* "true" when the backup pod must run on the head's node (worker-sync.jobCoschedules). */}}
{{- define "worker-sync.backup.coschedules" -}}
{{- include "worker-sync.jobCoschedules" (dict "ctx" . "job" .Values.cronJobs.backup) -}}
{{- end -}}

{{/* "true" when a CronJob (dict "ctx" $ "job" .Values.cronJobs.X) mounts the head's state volume: it is
enabled, its `positions.enabled` is on and the chart keeps a state volume (persistence.enabled). */}}
{{- define "worker-sync.jobMountsState" -}}
{{- if and .job.enabled .job.positions.enabled .ctx.Values.persistence.enabled }}true{{ end -}}
{{- end -}}

{{/*
"true" when a CronJob's pod (dict "ctx" $ "job" .Values.cronJobs.X) must run on the head's node:
positions.coschedule `always`, or `auto` with a state volume that only one node can mount (no ReadWriteMany /
ReadOnlyMany in persistence.accessModes).
*/}}
{{- define "worker-sync.jobCoschedules" -}}
{{- $mode := .job.positions.coschedule -}}
{{- $modes := .ctx.Values.persistence.accessModes | default list -}}
{{- $shared := or (has "ReadWriteMany" $modes) (has "ReadOnlyMany" $modes) -}}
{{- if or (eq $mode "always") (and (eq $mode "auto") (not $shared)) }}true{{ end -}}
{{- end -}}

{{/*
The state volume, mounted read-only at persistence.mountPath, for a CronJob that reads the committed
positions: (dict "ctx" $ "job" .Values.cronJobs.X) -> YAML {volumes, volumeMounts, affinity, tolerations}
(empty lists and dict when it mounts nothing). A ReadWriteOnce volume is attached to one node, where the head
runs: the pod is co-scheduled there (required podAffinity to the head pod, with the head's tolerations) unless
the access modes let any node mount it or positions.coschedule says otherwise.
*/}}
{{- define "worker-sync.jobStateMount" -}}
{{- $ctx := .ctx -}}
{{- $out := dict "volumes" list "volumeMounts" list "affinity" dict "tolerations" list -}}
{{- if include "worker-sync.jobMountsState" . -}}
{{- $claim := default (include "worker-sync.componentName" (dict "ctx" $ctx "suffix" "checkpoints")) $ctx.Values.persistence.existingClaim -}}
{{- $_ := set $out "volumes" (list (dict "name" "state" "persistentVolumeClaim" (dict "claimName" $claim "readOnly" true))) -}}
{{- $_ := set $out "volumeMounts" (list (dict "name" "state" "mountPath" $ctx.Values.persistence.mountPath "readOnly" true)) -}}
{{- if include "worker-sync.jobCoschedules" . -}}
{{- $head := include "worker-sync.componentSelectorLabels" (dict "ctx" $ctx "component" "head") | fromYaml -}}
{{- $term := dict "labelSelector" (dict "matchLabels" $head) "topologyKey" "kubernetes.io/hostname" -}}
{{- $_ := set $out "affinity" (dict "podAffinity" (dict "requiredDuringSchedulingIgnoredDuringExecution" (list $term))) -}}
{{- $_ := set $out "tolerations" ($ctx.Values.head.tolerations | default list) -}}
{{- end -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}
