{{/*
Pod spec of the Worker-Sync one-shot containers (hook Jobs, CronJobs, helm tests).
(dict "ctx" $ "name" "init" "args" (list "init" ...) "env" list "volumes" list "volumeMounts" list "restartPolicy" "Never")
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
volumes:
  {{- include "worker-sync.commonVolumes" $ctx | nindent 2 }}
  {{- with .volumes }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end -}}
