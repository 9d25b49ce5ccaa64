{{/*
The Worker-Sync config file and the Secret material the pods read.

Secrets reach the pods only as files under /run/secrets/worker-sync (one projected volume); the
config names those files (`password_file`, `signing_key_file`, `token_file`), never their content.
*/}}

{{- define "worker-sync.secretsDir" -}}/run/secrets/worker-sync{{- end -}}

{{/* The config's `databases:` block, from the seed's `databases.*` values. */}}
{{- define "worker-sync.configDatabases" -}}
{{- $dir := include "worker-sync.secretsDir" . -}}
{{- $dbs := dict -}}
{{- range $engine := list "postgresql" "mysql" "mongodb" -}}
{{- $v := index $.Values.databases $engine -}}
{{- $node := omit $v "password" "existingSecret" "secretKeys" "tls" -}}
{{- if or $v.existingSecret $v.password -}}
{{- $_ := set $node "password_file" (printf "%s/%s-password" $dir $engine) -}}
{{- end -}}
{{- $tls := dict "mode" $v.tls.mode -}}
{{- if $v.tls.existingSecret -}}
{{- if $v.tls.secretKeys.ca -}}
{{- $_ := set $tls "ca_file" (printf "%s/tls/%s/ca.crt" $dir $engine) -}}
{{- end -}}
{{- if and $v.tls.secretKeys.cert $v.tls.secretKeys.key -}}
{{- $_ := set $tls "cert_file" (printf "%s/tls/%s/tls.crt" $dir $engine) -}}
{{- $_ := set $tls "key_file" (printf "%s/tls/%s/tls.key" $dir $engine) -}}
{{- end -}}
{{- end -}}
{{- $_ := set $node "tls" $tls -}}
{{- $_ := set $dbs $engine $node -}}
{{- end -}}
{{- toYaml $dbs -}}
{{- end -}}

{{/* Whether the audit trail encrypts fields (and so needs the field-encryption key). */}}
{{- define "worker-sync.needsEncryptionKey" -}}
{{- $audit := (.Values.config | default dict).audit | default dict -}}
{{- if $audit.encrypted_fields }}true{{ end -}}
{{- end -}}

{{/* The whole config.yaml: `config` plus the keys the chart owns. */}}
{{- define "worker-sync.configYaml" -}}
{{- $dir := include "worker-sync.secretsDir" . -}}
{{- $cfg := deepCopy (.Values.config | default dict) -}}
{{- $_ := set $cfg "databases" (include "worker-sync.configDatabases" . | fromYaml) -}}
{{- $_ := set $cfg "log_level" .Values.logLevel -}}
{{- $http := dict "host" "0.0.0.0" "port" (int .Values.service.containerPort) "token_env" nil "token_file" (printf "%s/http-token" $dir) -}}
{{- if .Values.service.tls.enabled -}}
{{- $_ := set $http "tls_cert_file" (printf "%s/tls/http/tls.crt" $dir) -}}
{{- $_ := set $http "tls_key_file" (printf "%s/tls/http/tls.key" $dir) -}}
{{- end -}}
{{- $_ := set $cfg "http" $http -}}
{{- $supervisor := deepCopy ($cfg.supervisor | default dict) -}}
{{- $_ := set $supervisor "ray_address" "auto" -}}
{{- $_ := set $supervisor "state_dir" (printf "%s/state" .Values.persistence.mountPath) -}}
{{- $_ := set $supervisor "actor_cpus" (float64 .Values.actors.cpus) -}}
{{- $_ := set $supervisor "actor_memory_bytes" (int64 (include "worker-sync.memoryBytes" (.Values.actors.memory | default 0))) -}}
{{- $_ := set $cfg "supervisor" $supervisor -}}
{{- $audit := deepCopy ($cfg.audit | default dict) -}}
{{- $_ := set $audit "signing_key_file" (printf "%s/audit-signing-key" $dir) -}}
{{- $_ := set $audit "checkpoint_export_dir" (printf "%s/checkpoints" .Values.persistence.mountPath) -}}
{{- if include "worker-sync.needsEncryptionKey" . -}}
{{- $_ := set $audit "encryption_key_file" (printf "%s/audit-encryption-key" $dir) -}}
{{- end -}}
{{- $_ := set $cfg "audit" $audit -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/*
A value for the chart's Secret, base64-encoded: the given value, else the one already stored (so
upgrades keep it), else a fresh random one (crypto/rand). (dict "ctx" $ "key" "http-token"
"value" .Values.auth.httpToken "generate" "hex64"|"alnum32")
*/}}
{{- define "worker-sync.secretValue" -}}
{{- if .value -}}
{{- .value | toString | b64enc -}}
{{- else -}}
{{- $existing := lookup "v1" "Secret" .ctx.Release.Namespace (include "worker-sync.secretName" .ctx) | default dict -}}
{{- $data := $existing.data | default dict -}}
{{- if hasKey $data .key -}}
{{- index $data .key -}}
{{- else if eq .generate "hex64" -}}
{{- randAlphaNum 64 | sha256sum | b64enc -}}
{{- else -}}
{{- randAlphaNum 32 | b64enc -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The data of the chart's Secret (the seed's `worker-sync-secret`); empty when every secret is external. */}}
{{- define "worker-sync.secretData" -}}
{{- $ctx := . -}}
{{- range $engine := list "postgresql" "mysql" "mongodb" -}}
{{- $db := index $.Values.databases $engine -}}
{{- if and $db.enabled (not $db.existingSecret) $db.password }}
{{ $engine }}-password: {{ $db.password | toString | b64enc }}
{{- end -}}
{{- end -}}
{{- if not .Values.auth.existingSecret }}
audit-signing-key: {{ include "worker-sync.secretValue" (dict "ctx" $ctx "key" "audit-signing-key" "value" .Values.auth.auditSigningKey "generate" "hex64") }}
http-token: {{ include "worker-sync.secretValue" (dict "ctx" $ctx "key" "http-token" "value" .Values.auth.httpToken "generate" "alnum32") }}
{{- if include "worker-sync.needsEncryptionKey" . }}
audit-encryption-key: {{ include "worker-sync.secretValue" (dict "ctx" $ctx "key" "audit-encryption-key" "value" .Values.auth.auditEncryptionKey "generate" "hex64") }}
{{- end -}}
{{- end -}}
{{- if and .Values.grafana.enabled (not .Values.grafana.existingSecret) }}
grafana-admin-password: {{ include "worker-sync.secretValue" (dict "ctx" $ctx "key" "grafana-admin-password" "value" .Values.grafana.adminPassword "generate" "alnum32") }}
{{- end -}}
{{- if and (include "worker-sync.redis.bundled" .) (not .Values.redis.auth.existingSecret) }}
redis-password: {{ include "worker-sync.secretValue" (dict "ctx" $ctx "key" "redis-password" "value" .Values.redis.auth.password "generate" "alnum32") }}
{{- end -}}
{{- end -}}

{{/* Every Secret the release's pods read (JSON list, sorted, no duplicates): what the Role may `get`. */}}
{{- define "worker-sync.secretNames" -}}
{{- $names := list -}}
{{- if include "worker-sync.secretData" . | trim -}}{{- $names = append $names (include "worker-sync.secretName" .) -}}{{- end -}}
{{- with .Values.auth.existingSecret -}}{{- $names = append $names . -}}{{- end -}}
{{- range $engine := list "postgresql" "mysql" "mongodb" -}}
{{- $db := index $.Values.databases $engine -}}
{{- if $db.enabled -}}
{{- with $db.existingSecret -}}{{- $names = append $names . -}}{{- end -}}
{{- with $db.tls.existingSecret -}}{{- $names = append $names . -}}{{- end -}}
{{- end -}}
{{- end -}}
{{- if .Values.service.tls.enabled -}}{{- $names = append $names .Values.service.tls.existingSecret -}}{{- end -}}
{{- if .Values.ray.tls.enabled -}}{{- $names = append $names .Values.ray.tls.existingSecret -}}{{- end -}}
{{- with include "worker-sync.redis.secretName" . -}}{{- if $.Values.gcsFaultTolerance.enabled -}}{{- $names = append $names . -}}{{- end -}}{{- end -}}
{{- if .Values.grafana.enabled -}}{{- with .Values.grafana.existingSecret -}}{{- $names = append $names . -}}{{- end -}}{{- end -}}
{{- if .Values.alertmanager.enabled -}}
{{- $names = append $names (.Values.alertmanager.existingConfigSecret | default (include "worker-sync.componentName" (dict "ctx" . "suffix" "alertmanager"))) -}}
{{- end -}}
{{- with .Values.cronJobs.backup.s3.existingSecret -}}{{- $names = append $names . -}}{{- end -}}
{{- $names | uniq | sortAlpha | toJson -}}
{{- end -}}

{{/* The projected volume with every secret file the Worker-Sync containers read. */}}
{{- define "worker-sync.secretsVolume" -}}
- name: secrets
  projected:
    defaultMode: 288  # 0440: owner and group (fsGroup) may read
    sources:
      - secret:
          name: {{ default (include "worker-sync.secretName" .) .Values.auth.existingSecret }}
          items:
            - key: {{ ternary .Values.auth.secretKeys.auditSigningKey "audit-signing-key" (not (empty .Values.auth.existingSecret)) }}
              path: audit-signing-key
            - key: {{ ternary .Values.auth.secretKeys.httpToken "http-token" (not (empty .Values.auth.existingSecret)) }}
              path: http-token
            {{- if include "worker-sync.needsEncryptionKey" . }}
            - key: {{ ternary .Values.auth.secretKeys.auditEncryptionKey "audit-encryption-key" (not (empty .Values.auth.existingSecret)) }}
              path: audit-encryption-key
            {{- end }}
      {{- with .Values.service.tls }}
      {{- if .enabled }}
      - secret:
          name: {{ .existingSecret }}
          items:
            - key: {{ .secretKeys.cert }}
              path: tls/http/tls.crt
            - key: {{ .secretKeys.key }}
              path: tls/http/tls.key
            {{- with .secretKeys.ca }}
            - key: {{ . }}
              path: tls/http/ca.crt
            {{- end }}
      {{- end }}
      {{- end }}
      {{- range $engine := list "postgresql" "mysql" "mongodb" }}
      {{- $db := index $.Values.databases $engine }}
      {{- if and $db.enabled (or $db.existingSecret $db.password) }}
      - secret:
          name: {{ default (include "worker-sync.secretName" $) $db.existingSecret }}
          items:
            - key: {{ ternary $db.secretKeys.password (printf "%s-password" $engine) (not (empty $db.existingSecret)) }}
              path: {{ $engine }}-password
      {{- end }}
      {{- if and $db.enabled $db.tls.existingSecret }}
      - secret:
          name: {{ $db.tls.existingSecret }}
          items:
            {{- with $db.tls.secretKeys.ca }}
            - key: {{ . }}
              path: tls/{{ $engine }}/ca.crt
            {{- end }}
            {{- if and $db.tls.secretKeys.cert $db.tls.secretKeys.key }}
            - key: {{ $db.tls.secretKeys.cert }}
              path: tls/{{ $engine }}/tls.crt
            - key: {{ $db.tls.secretKeys.key }}
              path: tls/{{ $engine }}/tls.key
            {{- end }}
      {{- end }}
      {{- end }}
{{- end -}}

{{/* Volumes every Worker-Sync pod has: config, secrets, and writable /tmp and HOME for a read-only root. */}}
{{- define "worker-sync.commonVolumes" -}}
- name: config
  configMap:
    name: {{ include "worker-sync.configMapName" . }}
{{ include "worker-sync.secretsVolume" . }}
- name: tmp
  emptyDir: {}
- name: home
  emptyDir: {}
{{- end -}}

{{- define "worker-sync.commonVolumeMounts" -}}
- name: config
  mountPath: /etc/worker-sync
  readOnly: true
- name: secrets
  mountPath: {{ include "worker-sync.secretsDir" . }}
  readOnly: true
- name: tmp
  mountPath: /tmp
- name: home
  mountPath: /home/worker-sync
{{- end -}}

{{/* Path of the rendered config inside the pods. */}}
{{- define "worker-sync.configPath" -}}/etc/worker-sync/config.yaml{{- end -}}

{{/* Path of the CA that clients of the supervisor's TLS port trust, inside pods with the secrets volume; empty without one. */}}
{{- define "worker-sync.httpCaFile" -}}
{{- if and .Values.service.tls.enabled .Values.service.tls.secretKeys.ca -}}
{{- printf "%s/tls/http/ca.crt" (include "worker-sync.secretsDir" .) -}}
{{- end -}}
{{- end -}}
