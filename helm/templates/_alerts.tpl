{{/*
The seed's five alerts and the ones for failures they miss (a stream stopped or failing every call, a
supervisor that runs no stream, dead letters counted or left pending), shared by the PrometheusRule
(Prometheus Operator) and the bundled Prometheus's rule file, so both evaluate the same expressions. Series
are scoped to this release's scrape job (the Service name) and namespace. Thresholds are strict, as the seed
states them, except QueueBacklog's derived one (see worker-sync.queueBacklogExpr).
*/}}

{{/* The config's `supervisor.queue_max_batches` (the model's default, 64, when unset). */}}
{{- define "worker-sync.queueMaxBatches" -}}
{{- $supervisor := (.Values.config | default dict).supervisor | default dict -}}
{{- $supervisor.queue_max_batches | default 64 | int -}}
{{- end -}}

{{/*
QueueBacklog: `queue_depth` counts a stream's batches in flight, and the supervisor stops polling at
`queue_max_batches`, so a queue can never exceed that cap. Without an explicit threshold the alert fires when
a stream sits at the cap (its targets do not keep up and its source waits); an explicit one must lie below it.
*/}}
{{- define "worker-sync.queueBacklogExpr" -}}
{{- $threshold := .Values.alerts.queueBacklog.threshold -}}
{{- if kindIs "invalid" $threshold -}}
{{- printf "queue_depth{%s} >= %s" .sel (include "worker-sync.queueMaxBatches" .ctx) -}}
{{- else -}}
{{- printf "queue_depth{%s} > %v" .sel $threshold -}}
{{- end -}}
{{- end -}}

{{- define "worker-sync.alertGroups" -}}
{{- $a := .Values.alerts -}}
{{- $sel := printf "job=%q,namespace=%q" (include "worker-sync.fullname" .) .Release.Namespace -}}
{{- $common := .Values.alerts.labels | default dict -}}
{{- $queueCap := include "worker-sync.queueMaxBatches" . -}}
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
        expr: {{ include "worker-sync.queueBacklogExpr" (dict "ctx" . "Values" .Values "sel" $sel) | quote }}
        for: {{ $a.queueBacklog.for }}
        labels:
          {{- toYaml (merge (dict "severity" $a.queueBacklog.severity) $common) | nindent 10 }}
        annotations:
          summary: {{ printf "Stream {{ $labels.stream }} has a full queue (%s of %s batches in flight)" "{{ $value }}" $queueCap | quote }}
          description: {{ printf "Stream {{ $labels.stream }} has {{ $value }} batches in flight; at queue_max_batches (%s) it stops reading its source until its targets catch up. A target is slow or failing: see /status and the applier shards' errors." $queueCap | quote }}
      - alert: HighConflictRate
        expr: {{ printf "conflict_rate{%s} > %v" $sel $a.highConflictRate.threshold | quote }}
        for: {{ $a.highConflictRate.for }}
        labels:
          {{- toYaml (merge (dict "severity" $a.highConflictRate.severity) $common) | nindent 10 }}
        annotations:
          summary: Conflict rate above {{ mulf $a.highConflictRate.threshold 100 }} %
          description: {{ printf "The conflict rate is {{ $value | humanizePercentage }} (threshold %v %%)." (mulf $a.highConflictRate.threshold 100) | quote }}
      - alert: WorkerSyncStreamStopped
        expr: {{ printf "error_ratio{%s} >= 1" $sel | quote }}
        for: {{ $a.streamStopped.for }}
        labels:
          {{- toYaml (merge (dict "severity" $a.streamStopped.severity) $common) | nindent 10 }}
        annotations:
          summary: {{ print "Stream {{ $labels.stream }} is stopped or failing every call" | quote }}
          description: {{ print "Every call of stream {{ $labels.stream }} failed over the last minute, or it stopped on an error a human must fix (`on_error: stop`, a lost position, a refused login): nothing of it reaches its targets. /status names the error under `streams[].error` and `not_ready`." | quote }}
      - alert: WorkerSyncNotStreaming
        expr: {{ printf "(up{%s} == 1) unless on(job, namespace) count by (job, namespace) (sync_lag_ms{%s})" $sel $sel | quote }}
        for: {{ $a.notStreaming.for }}
        labels:
          {{- toYaml (merge (dict "severity" $a.notStreaming.severity) $common) | nindent 10 }}
        annotations:
          summary: Worker-Sync answers but runs no stream
          description: {{ printf "The supervisor of %s has answered Prometheus for %s without running a stream: it is waiting for a database or the audit schema (it retries with backoff; /readyz and /status say why)." (include "worker-sync.fullname" .) $a.notStreaming.for | quote }}
      - alert: WorkerSyncDeadLetters
        expr: {{ printf "increase(worker_sync_dead_letters_total{%s}[10m]) > 0" $sel | quote }}
        labels:
          {{- toYaml (merge (dict "severity" $a.deadLetters.severity) $common) | nindent 10 }}
        annotations:
          summary: A target refused rows (dead letters)
          description: {{ print "Link {{ $labels.link }} set aside {{ $value | humanize }} change(s) of table {{ $labels.table }} as dead letters in the last 10 minutes: its target refused rows for good (too large, a NUL byte, out of range, a constraint), and later changes of the same rows wait behind them. They are recorded, not lost; the rest flows on. See them with `worker-sync dead-letters list` (and `show ID`), fix the cause, then `worker-sync dead-letters retry ID`." | quote }}
      - alert: WorkerSyncDeadLettersPending
        expr: {{ printf "worker_sync_dead_letters_pending{%s} > 0" $sel | quote }}
        for: {{ $a.deadLetters.pendingFor }}
        labels:
          {{- toYaml (merge (dict "severity" $a.deadLetters.severity) $common) | nindent 10 }}
        annotations:
          summary: Dead letters wait for an operator
          description: {{ printf "{{ $value }} dead letter(s) have been neither retried nor discarded for %s; later changes of the same rows wait behind them. `worker-sync dead-letters list`, fix the cause, then `retry ID` or `discard ID`." $a.deadLetters.pendingFor | quote }}
      - alert: WorkerSyncSourceLogAtRisk
        expr: {{ printf "worker_sync_source_retention_state{%s,state=~\"at_risk|lost\"} == 1" $sel | quote }}
        for: {{ $a.sourceLogAtRisk.for }}
        labels:
          {{- toYaml (merge (dict "severity" $a.sourceLogAtRisk.severity) $common) | nindent 10 }}
        annotations:
          summary: {{ print "The source log stream {{ $labels.stream }} needs is {{ $labels.state }}" | quote }}
          description: {{ print "at_risk: the PostgreSQL slot of stream {{ $labels.stream }} is past max_slot_wal_keep_size (wal_status unreserved) and loses the WAL it needs at the next checkpoint, or its MongoDB resume point is about to roll off the oplog; lost: the source no longer has the log the stream needs, which can now only restart from a fresh snapshot (`worker-sync sync --manual`). Catch the stream up now, or raise the source's retention. `worker-sync status` shows `source log`." | quote }}
      - alert: WorkerSyncSourceRetentionLow
        expr: {{ printf "worker_sync_source_retention_headroom_seconds{%s} < %v" $sel $a.sourceRetentionLow.thresholdSeconds | quote }}
        for: {{ $a.sourceRetentionLow.for }}
        labels:
          {{- toYaml (merge (dict "severity" $a.sourceRetentionLow.severity) $common) | nindent 10 }}
        annotations:
          summary: {{ print "Stream {{ $labels.stream }}: its source may drop the log it needs soon" | quote }}
          description: {{ printf "The source of stream {{ $labels.stream }} may remove log the stream still needs in {{ $value | humanizeDuration }} (threshold %v s): the binlog's expiry (MariaDB/MySQL), the slot's safe_wal_size at the current WAL rate (PostgreSQL) or the oplog window (MongoDB). Past it, the stream needs a full re-snapshot. Find why the stream is behind or stopped (/status), or raise binlog_expire_logs_seconds / max_slot_wal_keep_size." $a.sourceRetentionLow.thresholdSeconds | quote }}
      - alert: WorkerSyncSourceRetainedHigh
        expr: {{ printf "worker_sync_source_retained_bytes{%s} > %v" $sel ($a.sourceRetainedHigh.thresholdBytes | int64) | quote }}
        for: {{ $a.sourceRetainedHigh.for }}
        labels:
          {{- toYaml (merge (dict "severity" $a.sourceRetainedHigh.severity) $common) | nindent 10 }}
        annotations:
          summary: {{ print "Stream {{ $labels.stream }} holds {{ $value | humanize1024 }}B of source log" | quote }}
          description: {{ printf "The source keeps {{ $value | humanize1024 }}B of log for stream {{ $labels.stream }} (threshold %v bytes): a PostgreSQL slot holds WAL for ever while its stream is stopped or slow, until the disk fills. Find why the stream is behind or stopped (/status); a stream removed for good needs its slot dropped." ($a.sourceRetainedHigh.thresholdBytes | int64) | quote }}
      - alert: WorkerSyncVerifyMismatches
        expr: {{ printf "worker_sync_verify_mismatches{%s} > 0" $sel | quote }}
        labels:
          {{- toYaml (merge (dict "severity" $a.verifyMismatches.severity) $common) | nindent 10 }}
        annotations:
          summary: {{ print "Link {{ $labels.link }}: the target differs from the source" | quote }}
          description: {{ print "The last `worker-sync verify` of link {{ $labels.link }} found {{ $value }} key(s) whose target row differs from the source's (changes in flight were read again and are not counted): rows changed or removed behind Worker-Sync's back, or changes lost. Run `worker-sync verify --config FILE --link {{ $labels.link }}` to see the keys and both rows, find the cause, then `--repair`. The alert ends with the next clean verify." | quote }}
{{- if .Values.cronJobs.verify.enabled }}
      - alert: WorkerSyncVerifyStale
        expr: {{ printf "time() - worker_sync_verify_last_run_timestamp_seconds{%s} > %v" $sel ($a.verifyStale.maxAgeSeconds | int64) | quote }}
        labels:
          {{- toYaml (merge (dict "severity" $a.verifyStale.severity) $common) | nindent 10 }}
        annotations:
          summary: {{ print "Link {{ $labels.link }} has not been verified lately" | quote }}
          description: {{ printf "No `worker-sync verify` result of link {{ $labels.link }} has reached the supervisor for {{ $value | humanizeDuration }} (threshold %v s): the verify CronJob fails before it reports (`kubectl get jobs -l app.kubernetes.io/component=verify`, then its logs) or no longer runs." ($a.verifyStale.maxAgeSeconds | int64) | quote }}
{{- end }}
{{- end -}}
