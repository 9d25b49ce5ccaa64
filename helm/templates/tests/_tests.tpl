{{/*
A `helm test` pod running one check: (dict "ctx" $ "name" "test-connection" "command" list "args" list "env" list).
Every test pod mounts the Worker-Sync config and secrets and the check script.
*/}}
{{- define "worker-sync.testPod" -}}
{{- $ctx := .ctx -}}
apiVersion: v1
kind: Pod
metadata:
  {{- $annotations := dict "helm.sh/hook" "test" "helm.sh/hook-delete-policy" "before-hook-creation" }}
  {{- include "worker-sync.metadata" (dict "ctx" $ctx "name" (include "worker-sync.componentName" (dict "ctx" $ctx "suffix" .name)) "component" "test" "annotations" $annotations) | nindent 2 }}
spec:
  {{- $env := concat (list (dict "name" "TEST_TIMEOUT_S" "value" (toString $ctx.Values.tests.timeoutSeconds))) (.env | default list) }}
  {{- with include "worker-sync.httpCaFile" $ctx }}
  {{- /* The supervisor's TLS port: Python's default context trusts the CA named here. */}}
  {{- $env = append $env (dict "name" "SSL_CERT_FILE" "value" .) }}
  {{- end }}
  {{- $scripts := list (dict "name" "test-scripts" "configMap" (dict "name" (include "worker-sync.componentName" (dict "ctx" $ctx "suffix" "tests")))) }}
  {{- $mounts := list (dict "name" "test-scripts" "mountPath" "/opt/worker-sync-tests" "readOnly" true) }}
  {{- include "worker-sync.toolPodSpec" (dict "ctx" $ctx "name" .name "command" .command "args" .args "env" $env "resources" $ctx.Values.tests.resources "volumes" $scripts "volumeMounts" $mounts) | nindent 2 }}
{{- end -}}

{{- define "worker-sync.testScript" -}}
{{- list "python" "/opt/worker-sync-tests/helm_tests.py" | toJson -}}
{{- end -}}
