"""The Grafana dashboard groups and labels each panel by labels its metric really has (it once grouped
`conflict_rate` by `link`, which the metric does not carry, so the panel showed one unlabelled line)."""

from __future__ import annotations

import json
import re

from prometheus_client.metrics import MetricWrapperBase

from actors import metrics
from tests.helm.chart_support import CHART_DIR

#: Labels Prometheus adds to every scraped series (the scrape job and the target).
TARGET_LABELS = {"namespace", "job", "instance", "pod", "service", "container", "endpoint"}
EXPRESSION = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)\s*\(?\s*([a-zA-Z_:][a-zA-Z0-9_:]*)")


def metric_labels() -> dict[str, set[str]]:
    """Each Worker-Sync metric's label names, as actors/metrics.py declares them."""
    found = {}
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            found[value._name] = set(value._labelnames)
    return found


def panel_targets() -> list[dict]:
    dashboard = json.loads((CHART_DIR / "dashboards" / "worker-sync.json").read_text())
    return [target for panel in dashboard["panels"] for target in panel.get("targets", [])]


def test_every_grouping_and_legend_uses_a_label_of_its_metric():
    labels = metric_labels()
    assert labels["conflict_rate"] == {"group"}
    checked = 0
    for target in panel_targets():
        for by, metric in EXPRESSION.findall(target["expr"]):
            if metric not in labels:
                continue  # Prometheus' own series (`up`)
            wanted = {label.strip() for label in by.split(",") if label.strip()}
            legend = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")))
            assert wanted | legend <= labels[metric] | TARGET_LABELS, (target["expr"], labels[metric])
            checked += 1
    assert checked >= 3, "the expressions were not recognised"
