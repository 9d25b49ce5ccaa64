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
{{- if and .Values.cronJobs.backup.enabled .Values.cronJobs.backup.positions.enabled .Values.persistence.enabled }}true{{ end -}}
{{- end -}}

{{/*
"true" when the backup pod must run on the head's node: positions.coschedule `always`, or `auto` with a state
volume that only one node can mount (no ReadWriteMany / ReadOnlyMany in persistence.accessModes).
*/}}
{{- define "worker-sync.backup.coschedules" -}}
{{- $mode := .Values.cronJobs.backup.positions.coschedule -}}
{{- $modes := .Values.persistence.accessModes | default list -}}
{{- $shared := or (has "ReadWriteMany" $modes) (has "ReadOnlyMany" $modes) -}}
{{- if or (eq $mode "always") (and (eq $mode "auto") (not $shared)) }}true{{ end -}}
{{- end -}}
