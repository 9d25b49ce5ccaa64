"""The alerts, proven with `promtool test rules` (Debian package `prometheus`).

Each seed alert fires just above the seed's threshold once its `for` has passed, and stays quiet at the
threshold, below it, before `for` has passed, and for another release's series. QueueBacklog fires when a
stream's queue reaches `queue_max_batches`, the cap `queue_depth` can reach (the seed's 1000 never could),
and not one batch below it. WorkerSyncStreamStopped fires for a stream whose every call fails (or that
stopped), not for one that fails 99 %. WorkerSyncNotStreaming fires for a supervisor that answers but runs no
stream, not for one that streams or is down. WorkerSyncDeadLetters fires while dead letters were counted in
the last 10 minutes, WorkerSyncDeadLettersPending while some wait longer than `pendingFor`. Of the source-log
alerts (issue 21), WorkerSyncSourceLogAtRisk fires for a stream whose log is `at_risk` or `lost`, not `ok`;
WorkerSyncSourceRetentionLow one second below its headroom threshold, not at it; WorkerSyncSourceRetainedHigh
one byte above 10 GiB, not at it. WorkerSyncVerifyMismatches fires while a link's last verify found differing
keys and ends with a clean one; WorkerSyncVerifyStale fires once a link's last verify is older than
`maxAgeSeconds`, not at it, and exists only with the verify CronJob. The rules come
from the rendered PrometheusRule; the bundled Prometheus must carry the very same groups.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from tests.helm.chart_support import NAMESPACE, RELEASE, load_yaml

#: (alert, metric, label, threshold, just above, below) - the seed's thresholds.
THRESHOLDS = [
    ("HighSyncLag", "sync_lag_ms", "stream", 500, 501, 499),
    ("HighErrorRate", "error_ratio", "link", 0.01, 0.0101, 0.0099),
    ("HighConflictRate", "conflict_rate", "link", 0.05, 0.0501, 0.0499),
]
SCOPE = {"job": RELEASE, "namespace": NAMESPACE}


@pytest.fixture(scope="session")
def promtool() -> str:
    path = shutil.which("promtool")
    if not path:
        pytest.skip("promtool is not on PATH (apt-get install prometheus): the alerts were NOT proven")
    return path


def run(promtool: str, *args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def series(metric: str, labels: dict, values: str) -> dict:
    label_text = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return {"series": f"{metric}{{{label_text}}}", "values": values}


def rule(rules_groups: list[dict], alert: str) -> dict:
    return next(r for g in rules_groups for r in g["rules"] if r.get("alert") == alert)


def minutes(duration: str) -> int:
    assert duration.endswith(("m", "h")), f"the tests expect `for` in minutes or hours, got {duration}"
    return int(duration[:-1]) * (60 if duration.endswith("h") else 1)


def threshold_case(groups, alert, metric, label, above, at, below) -> dict:
    hold = minutes(rule(groups, alert)["for"])
    steps = f"x{hold + 5}"
    expected_labels = {**SCOPE, label: "above", "severity": rule(groups, alert)["labels"]["severity"]}
    return {
        "interval": "1m",
        "input_series": [
            series(metric, {**SCOPE, label: "above"}, f"{above}{steps}"),
            series(metric, {**SCOPE, label: "at"}, f"{at}{steps}"),
            series(metric, {**SCOPE, label: "below"}, f"{below}{steps}"),
            # Another release's series above the threshold is not this release's alert.
            series(metric, {**SCOPE, "job": "other-release", label: "above"}, f"{above * 10}{steps}"),
        ],
        "alert_rule_test": [
            # Above the threshold, but not yet for long enough.
            {"eval_time": f"{hold - 1}m", "alertname": alert, "exp_alerts": []},
            # Held for `for`: only the series above the threshold fires.
            {"eval_time": f"{hold + 1}m", "alertname": alert, "exp_alerts": [{"exp_labels": expected_labels}]},
        ],
    }


def down_cases(groups) -> list[dict]:
    hold = minutes(rule(groups, "WorkerSyncDown")["for"])
    severity = rule(groups, "WorkerSyncDown")["labels"]["severity"]
    target = {**SCOPE, "instance": "worker-sync:9080"}
    return [
        {  # Up, then the scrape fails: quiet until `for` has passed, then firing.
            "interval": "1m",
            "input_series": [series("up", target, f"1x4 0x{hold + 5}")],
            "alert_rule_test": [
                {"eval_time": "4m", "alertname": "WorkerSyncDown", "exp_alerts": []},
                {"eval_time": f"{4 + hold - 1}m", "alertname": "WorkerSyncDown", "exp_alerts": []},
                {
                    "eval_time": f"{4 + hold + 1}m",
                    "alertname": "WorkerSyncDown",
                    "exp_alerts": [{"exp_labels": {**target, "severity": severity}}],
                },
            ],
        },
        {  # No target at all (the Service lost its endpoint): absent() fires.
            "interval": "1m",
            "input_series": [series("up", {**SCOPE, "job": "other-release", "instance": "x"}, f"1x{hold + 5}")],
            "alert_rule_test": [
                {
                    "eval_time": f"{hold + 1}m",
                    "alertname": "WorkerSyncDown",
                    "exp_alerts": [{"exp_labels": {**SCOPE, "severity": severity}}],
                },
            ],
        },
    ]


def dead_letter_cases(groups) -> list[dict]:
    severity = rule(groups, "WorkerSyncDeadLetters")["labels"]["severity"]
    refused = {**SCOPE, "link": "orders", "table": "shop.orders"}
    return [
        {
            "interval": "1m",
            "input_series": [
                # Nothing refused for 5 minutes, then one dead letter, then none for a long while.
                series("worker_sync_dead_letters_total", refused, "0x5 1x30"),
                # Dead letters counted long ago: no new ones, no alert.
                series("worker_sync_dead_letters_total", {**refused, "table": "shop.old"}, "4x35"),
                # Another release's dead letters are not this release's alert.
                series("worker_sync_dead_letters_total", {**refused, "job": "other-release"}, "0x5 1x30"),
            ],
            "alert_rule_test": [
                {"eval_time": "5m", "alertname": "WorkerSyncDeadLetters", "exp_alerts": []},
                # Fires at once (no `for`), for the table whose counter went up, ...
                {
                    "eval_time": "6m",
                    "alertname": "WorkerSyncDeadLetters",
                    "exp_alerts": [{"exp_labels": {**refused, "severity": severity}}],
                },
                {
                    "eval_time": "15m",
                    "alertname": "WorkerSyncDeadLetters",
                    "exp_alerts": [{"exp_labels": {**refused, "severity": severity}}],
                },
                # ... and resolves once 10 minutes pass without a new one.
                {"eval_time": "17m", "alertname": "WorkerSyncDeadLetters", "exp_alerts": []},
            ],
        }
    ]


def held_case(groups, alert, metric, label, fires, quiet) -> dict:
    """``fires`` held for the alert's `for` fires (only for this release); ``quiet`` never does."""
    hold = minutes(rule(groups, alert)["for"])
    steps = f"x{hold + 5}"
    expected = {**SCOPE, label: "fires", "severity": rule(groups, alert)["labels"]["severity"]}
    return {
        "interval": "1m",
        "input_series": [
            series(metric, {**SCOPE, label: "fires"}, f"{fires}{steps}"),
            series(metric, {**SCOPE, label: "quiet"}, f"{quiet}{steps}"),
            series(metric, {**SCOPE, "job": "other-release", label: "fires"}, f"{fires}{steps}"),
        ],
        "alert_rule_test": [
            {"eval_time": f"{hold - 1}m", "alertname": alert, "exp_alerts": []},
            {"eval_time": f"{hold + 1}m", "alertname": alert, "exp_alerts": [{"exp_labels": expected}]},
        ],
    }


def not_streaming_cases(groups) -> list[dict]:
    hold = minutes(rule(groups, "WorkerSyncNotStreaming")["for"])
    severity = rule(groups, "WorkerSyncNotStreaming")["labels"]["severity"]
    target = {**SCOPE, "instance": "worker-sync:9080"}
    steps = f"x{hold + 5}"
    waiting = {  # answers, but no stream reports a lag: it waits for a database
        "interval": "1m",
        "input_series": [series("up", target, f"1{steps}")],
        "alert_rule_test": [
            {"eval_time": f"{hold - 1}m", "alertname": "WorkerSyncNotStreaming", "exp_alerts": []},
            {
                "eval_time": f"{hold + 1}m",
                "alertname": "WorkerSyncNotStreaming",
                "exp_alerts": [{"exp_labels": {**target, "severity": severity}}],
            },
        ],
    }
    streaming = {  # answers and streams; or is down (WorkerSyncDown's business, not this alert's)
        "interval": "1m",
        "input_series": [
            series("up", target, f"1{steps}"),
            series("sync_lag_ms", {**target, "stream": "postgresql"}, f"0{steps}"),
            series("up", {**target, "namespace": "other"}, f"0{steps}"),
        ],
        "alert_rule_test": [{"eval_time": f"{hold + 1}m", "alertname": "WorkerSyncNotStreaming", "exp_alerts": []}],
    }
    return [waiting, streaming]


def source_log_cases(groups) -> list[dict]:
    """A stream whose source log is at_risk or lost fires (after `for`); one that is ok does not, nor another
    release's."""
    alert = "WorkerSyncSourceLogAtRisk"
    hold = minutes(rule(groups, alert)["for"])
    severity = rule(groups, alert)["labels"]["severity"]
    steps = f"x{hold + 5}"
    metric = "worker_sync_source_retention_state"
    inputs = []
    for stream, current in (("risky", "at_risk"), ("gone", "lost"), ("fine", "ok")):
        for state in ("ok", "at_risk", "lost"):
            value = f"{int(state == current)}{steps}"
            inputs.append(series(metric, {**SCOPE, "stream": stream, "state": state}, value))
    inputs.append(series(metric, {**SCOPE, "job": "other-release", "stream": "x", "state": "lost"}, f"1{steps}"))
    firing = [
        {"exp_labels": {**SCOPE, "stream": "risky", "state": "at_risk", "severity": severity}},
        {"exp_labels": {**SCOPE, "stream": "gone", "state": "lost", "severity": severity}},
    ]
    return [
        {
            "interval": "1m",
            "input_series": inputs,
            "alert_rule_test": [
                {"eval_time": f"{hold - 1}m", "alertname": alert, "exp_alerts": []},  # not yet for `for`
                {"eval_time": f"{hold + 1}m", "alertname": alert, "exp_alerts": firing},
            ],
        }
    ]


def verify_mismatch_cases(groups) -> list[dict]:
    """Fires at once while the last verify of a link found differing keys; a clean verify ends it."""
    alert = "WorkerSyncVerifyMismatches"
    severity = rule(groups, alert)["labels"]["severity"]
    metric = "worker_sync_verify_mismatches"
    drifted = {**SCOPE, "link": "drifted"}
    return [
        {
            "interval": "1m",
            "input_series": [
                series(metric, drifted, "0x5 3x5 0x5"),  # clean, then 3 keys differ, then clean again
                series(metric, {**SCOPE, "link": "clean"}, "0x15"),
                series(metric, {**drifted, "job": "other-release"}, "3x15"),
            ],
            "alert_rule_test": [
                {"eval_time": "3m", "alertname": alert, "exp_alerts": []},
                {
                    "eval_time": "7m",
                    "alertname": alert,
                    "exp_alerts": [{"exp_labels": {**drifted, "severity": severity}}],
                },
                {"eval_time": "13m", "alertname": alert, "exp_alerts": []},
            ],
        }
    ]


def verify_stale_cases(groups) -> list[dict]:
    """A link whose last verify (t=0) is older than maxAgeSeconds (36 h) fires; one verified every hour does not."""
    alert = "WorkerSyncVerifyStale"
    assert rule(groups, alert)["expr"].endswith("> 129600")
    severity = rule(groups, alert)["labels"]["severity"]
    metric = "worker_sync_verify_last_run_timestamp_seconds"
    stale = {**SCOPE, "link": "stale"}
    return [
        {
            "interval": "1h",
            "input_series": [
                series(metric, stale, "0x40"),  # verified once, at t=0, never again
                series(metric, {**SCOPE, "link": "fresh"}, "0+3600x40"),  # verified every hour
                series(metric, {**stale, "job": "other-release"}, "0x40"),
            ],
            "alert_rule_test": [
                {"eval_time": "36h", "alertname": alert, "exp_alerts": []},  # exactly maxAgeSeconds: not yet
                {
                    "eval_time": "37h",
                    "alertname": alert,
                    "exp_alerts": [{"exp_labels": {**stale, "severity": severity}}],
                },
            ],
        }
    ]


def cases_for(groups, case: str) -> list[dict]:
    if case == "WorkerSyncDown":
        return down_cases(groups)
    if case == "WorkerSyncDeadLetters":
        return dead_letter_cases(groups)
    if case == "WorkerSyncNotStreaming":
        return not_streaming_cases(groups)
    if case == "QueueBacklog":  # the default cap, queue_max_batches 64: at it fires, one below does not
        return [held_case(groups, "QueueBacklog", "queue_depth", "stream", 64, 63)]
    if case == "WorkerSyncStreamStopped":
        return [held_case(groups, "WorkerSyncStreamStopped", "error_ratio", "stream", 1, 0.99)]
    if case == "WorkerSyncSourceLogAtRisk":
        return source_log_cases(groups)
    if case == "WorkerSyncSourceRetentionLow":  # below the headroom threshold fires, at it does not
        expr = rule(groups, case)["expr"]
        assert expr.endswith("< 7200"), expr
        metric = "worker_sync_source_retention_headroom_seconds"
        return [held_case(groups, case, metric, "stream", 7199, 7200)]
    if case == "WorkerSyncSourceRetainedHigh":  # above 10 GiB fires, at it does not
        assert rule(groups, case)["expr"].endswith("> 10737418240")
        return [held_case(groups, case, "worker_sync_source_retained_bytes", "stream", 10737418241, 10737418240)]
    if case == "WorkerSyncVerifyMismatches":
        return verify_mismatch_cases(groups)
    if case == "WorkerSyncVerifyStale":
        return verify_stale_cases(groups)
    if case == "WorkerSyncDeadLettersPending":
        return [held_case(groups, "WorkerSyncDeadLettersPending", "worker_sync_dead_letters_pending", "pod", 1, 0)]
    alert, metric, label, at, above, below = next(t for t in THRESHOLDS if t[0] == case)
    expr = rule(groups, alert)["expr"]
    assert f"> {at}" in expr, f"{alert} does not compare with the seed threshold {at}: {expr}"
    return [threshold_case(groups, alert, metric, label, above, at, below)]


def prove(promtool: str, groups: list[dict], tests: list[dict], tmp_path) -> subprocess.CompletedProcess:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": without_annotations(groups)}))
    (tmp_path / "tests.yaml").write_text(
        yaml.safe_dump({"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": tests})
    )
    return run(promtool, "test", "rules", "tests.yaml", cwd=tmp_path)


def without_annotations(groups: list[dict]) -> list[dict]:
    """Firing does not depend on annotations; promtool would otherwise need their rendered text."""
    return [{**g, "rules": [{k: v for k, v in r.items() if k != "annotations"} for r in g["rules"]]} for g in groups]


@pytest.fixture(scope="session")
def rule_groups(default_rendering) -> list[dict]:
    return default_rendering.one("PrometheusRule")["spec"]["groups"]


def test_bundled_prometheus_evaluates_the_same_rules(rule_groups, default_rendering):
    data = default_rendering.get("ConfigMap", "worker-sync-prometheus")["data"]
    assert load_yaml(data["worker-sync-alerts.yaml"])["groups"] == rule_groups


def test_rules_and_prometheus_config_are_valid(promtool, rule_groups, default_rendering, tmp_path):
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule_groups}))
    checked = run(promtool, "check", "rules", "rules.yaml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 14 rules found" in checked.stdout
    config = load_yaml(default_rendering.get("ConfigMap", "worker-sync-prometheus")["data"]["prometheus.yml"])
    config["rule_files"] = [str(tmp_path / "rules.yaml")]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    checked = run(promtool, "check", "config", "prometheus.yml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr


ALERTS = [
    *(t[0] for t in THRESHOLDS),
    "QueueBacklog",
    "WorkerSyncDown",
    "WorkerSyncStreamStopped",
    "WorkerSyncNotStreaming",
    "WorkerSyncDeadLetters",
    "WorkerSyncDeadLettersPending",
    "WorkerSyncSourceLogAtRisk",
    "WorkerSyncSourceRetentionLow",
    "WorkerSyncSourceRetainedHigh",
    "WorkerSyncVerifyMismatches",
    "WorkerSyncVerifyStale",
]


def test_every_alert_is_proven(rule_groups):
    assert sorted(ALERTS) == sorted(r["alert"] for g in rule_groups for r in g["rules"])


@pytest.mark.parametrize("case", ALERTS)
def test_alert_fires_above_its_threshold_only(promtool, rule_groups, tmp_path, case):
    result = prove(promtool, rule_groups, cases_for(rule_groups, case), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_queue_backlog_follows_the_configured_cap(render, helm, promtool, tmp_path):
    """A smaller `queue_max_batches` moves the threshold with it; an explicit threshold must lie below the cap."""
    groups = render({"config": {"supervisor": {"queue_max_batches": 16}}}).one("PrometheusRule")["spec"]["groups"]
    assert rule(groups, "QueueBacklog")["expr"].endswith(" >= 16")
    result = prove(promtool, groups, [held_case(groups, "QueueBacklog", "queue_depth", "stream", 16, 15)], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    explicit = render({"alerts": {"queueBacklog": {"threshold": 40}}}).one("PrometheusRule")["spec"]["groups"]
    assert rule(explicit, "QueueBacklog")["expr"].endswith(" > 40")
    with pytest.raises(helm.HelmRenderError, match=r"alerts.queueBacklog.threshold \(1000\) can never be passed"):
        render({"alerts": {"queueBacklog": {"threshold": 1000}}})


def test_verify_stale_alert_comes_with_the_verify_cronjob_only(render):
    groups = render({"cronJobs": {"verify": {"enabled": False}}}).one("PrometheusRule")["spec"]["groups"]
    names = {r["alert"] for g in groups for r in g["rules"]}
    assert "WorkerSyncVerifyMismatches" in names and "WorkerSyncVerifyStale" not in names


def test_promtool_test_can_fail(promtool, rule_groups, tmp_path):
    """The proof above is not vacuous: expecting the at-threshold series to fire makes promtool fail."""
    case = threshold_case(rule_groups, "HighSyncLag", "sync_lag_ms", "stream", 501, 500, 499)
    case["alert_rule_test"][1]["exp_alerts"][0]["exp_labels"]["stream"] = "at"
    result = prove(promtool, rule_groups, [case], tmp_path)
    assert result.returncode == 1
    assert "FAILED" in result.stdout + result.stderr
