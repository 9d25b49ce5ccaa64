{{/*
The seed's five alerts and WorkerSyncDeadLetters, shared by the PrometheusRule (Prometheus Operator) and
the bundled Prometheus's rule file, so both evaluate the same expressions. Series are scoped to this
release's scrape job (the Service name) and namespace. Thresholds are strict, as the seed states them.
*/}}
{{- define "worker-sync.alertGroups" -}}
{{- $a := .Values.alerts -}}
{{- $sel := printf "job=%q,namespace=%q" (include "worker-sync.fullname" .) .Release.Namespace -}}
{{- $common := .Values.alerts.labels | default dict -}}
groups:
  - name: worker-sync
    rules:
      - alert: WorkerSyncDown
        expr: {{ printf "up{%s} == 0 or absent(up{%s})" $sel $sel | quote }}
        for: {{ $a.workerSyncDown.for }}
        labels:
          {{- toYaml (merge (dict "severity" $a.workerSyncDown.severity) $common) | nindent 10 }}
        annotations:
          summary: Worker-Sync is down
          description: {{ printf "The supervisor of %s in %s has not answered Prometheus for %s." (include "worker-sync.fullname" .) .Release.Namespace $a.workerSyncDown.for | quote }}
      - alert: HighSyncLag
        expr: {{ printf "sync_lag_ms{%s} > %v" $sel $a.highSyncLag.thresholdMs | quote }}
        for: {{ $a.highSyncLag.for }}
        labels:
          {{- toYaml (merge (dict "severity" $a.highSyncLag.severity) $common) | nindent 10 }}
        annotations:
          summary: Sync lag above {{ $a.highSyncLag.thresholdMs }} ms
          description: {{ printf "Stream {{ $labels.stream }} is {{ $value }} ms behind its source (threshold %v ms)." $a.highSyncLag.thresholdMs | quote }}
      - alert: HighErrorRate
        expr: {{ printf "error_ratio{%s} > %v" $sel $a.highErrorRate.threshold | quote }}
        for: {{ $a.highErrorRate.for }}
        labels:
          {{- toYaml (merge (dict "severity" $a.highErrorRate.severity) $common) | nindent 10 }}
        annotations:
          summary: Error ratio above {{ mulf $a.highErrorRate.threshold 100 }} %
          description: {{ printf "The error ratio is {{ $value | humanizePercentage }} (threshold %v %%)." (mulf $a.highErrorRate.threshold 100) | quote }}
      - alert: QueueBacklog
        expr: {{ printf "queue_depth{%s} > %v" $sel $a.queueBacklog.threshold | quote }}
        for: {{ $a.queueBacklog.for }}
        labels:
          {{- toYaml (merge (dict "severity" $a.queueBacklog.severity) $common) | nindent 10 }}
        annotations:
          summary: More than {{ $a.queueBacklog.threshold }} jobs queued
          description: {{ printf "{{ $value }} jobs are waiting (threshold %v)." $a.queueBacklog.threshold | quote }}
      - alert: HighConflictRate
        expr: {{ printf "conflict_rate{%s} > %v" $sel $a.highConflictRate.threshold | quote }}
        for: {{ $a.highConflictRate.for }}
        labels:
          {{- toYaml (merge (dict "severity" $a.highConflictRate.severity) $common) | nindent 10 }}
        annotations:
          summary: Conflict rate above {{ mulf $a.highConflictRate.threshold 100 }} %
          description: {{ printf "The conflict rate is {{ $value | humanizePercentage }} (threshold %v %%)." (mulf $a.highConflictRate.threshold 100) | quote }}
      - alert: WorkerSyncDeadLetters
        expr: {{ printf "increase(worker_sync_dead_letters_total{%s}[10m]) > 0" $sel | quote }}
        labels:
          {{- toYaml (merge (dict "severity" $a.deadLetters.severity) $common) | nindent 10 }}
        annotations:
          summary: A target refused rows (dead letters)
          description: {{ print "Link {{ $labels.link }} set aside {{ $value | humanize }} change(s) of table {{ $labels.table }} as dead letters in the last 10 minutes: its target refused rows for good (too large, a NUL byte, out of range, a constraint), and later changes of the same rows wait behind them. They are recorded, not lost; the rest flows on. See them with `worker-sync dead-letters list` (and `show ID`), fix the cause, then `worker-sync dead-letters retry ID`." | quote }}
{{- end -}}
