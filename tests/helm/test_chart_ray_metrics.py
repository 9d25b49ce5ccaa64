"""Ray's own metrics are scraped: a PodMonitor (Prometheus Operator) and, for the bundled Prometheus, a
headless Service over every Ray pod, both on the `metrics` port Ray's metrics agent listens on
(`metrics-export-port`), which the NetworkPolicy opens to the Prometheus peers."""

from __future__ import annotations

import pytest

from tests.helm.chart_support import NAMESPACE, load_yaml, pod_specs


def matches(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def pod_labels(rendering) -> dict[str, dict]:
    """Labels of every pod template the chart renders, by where it is."""
    found = {}
    for obj in rendering.objects:
        for where, _ in pod_specs(obj):
            kind = obj["kind"]
            spec = obj["spec"]
            if kind == "RayCluster":
                group = spec["headGroupSpec"] if where.endswith("/head") else spec["workerGroupSpecs"][0]
                found[where] = group["template"]["metadata"]["labels"]
            elif kind in ("Deployment", "Job"):
                found[where] = spec["template"]["metadata"].get("labels", {})
            elif kind == "Pod":
                found[where] = obj["metadata"]["labels"]
    return found


def metrics_port(rendering, where: str) -> int:
    cluster = rendering.one("RayCluster")["spec"]
    group = cluster["headGroupSpec"] if where.endswith("/head") else cluster["workerGroupSpecs"][0]
    ports = {p["name"]: p["containerPort"] for p in group["template"]["spec"]["containers"][0]["ports"]}
    assert int(group["rayStartParams"]["metrics-export-port"]) == ports["metrics"], where
    return ports["metrics"]


def test_the_pod_monitor_selects_every_ray_pod_and_nothing_else(rendering):
    monitor = rendering.one("PodMonitor")
    selector = monitor["spec"]["selector"]["matchLabels"]
    selected = sorted(where for where, labels in pod_labels(rendering).items() if matches(selector, labels))
    assert selected == ["RayCluster/worker-sync/head", "RayCluster/worker-sync/worker"]
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    [endpoint] = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == "metrics"
    assert {metrics_port(rendering, w) for w in selected} == {8081}


def test_the_bundled_prometheus_finds_every_ray_pod_by_dns(default_rendering):
    service = default_rendering.get("Service", "worker-sync-ray-metrics")
    assert service["spec"]["clusterIP"] == "None"
    selector = service["spec"]["selector"]
    selected = [w for w, labels in pod_labels(default_rendering).items() if matches(selector, labels)]
    assert sorted(selected) == ["RayCluster/worker-sync/head", "RayCluster/worker-sync/worker"]
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 8081, "targetPort": "metrics", "protocol": "TCP"}]
    config = load_yaml(default_rendering.get("ConfigMap", "worker-sync-prometheus")["data"]["prometheus.yml"])
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "worker-sync-ray")
    assert job["dns_sd_configs"] == [{"names": [f"worker-sync-ray-metrics.{NAMESPACE}.svc"], "type": "A", "port": 8081}]


def test_the_network_policy_lets_prometheus_reach_ray_metrics(rendering):
    rules = rendering.get("NetworkPolicy", "worker-sync")["spec"]["ingress"]
    metrics_from = rendering.values.get("networkPolicy", {}).get("metricsFrom") or [
        {"namespaceSelector": {}, "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}
    ]
    rule = next(r for r in rules if r.get("from") == metrics_from)
    assert {"protocol": "TCP", "port": 8081} in rule["ports"]


def test_head_and_workers_must_export_on_one_port(render, helm):
    with pytest.raises(helm.HelmRenderError, match=r"worker.rayStartParams.metrics-export-port \(9091\) must equal"):
        render({"worker": {"rayStartParams": {"metrics-export-port": "9091"}}})
