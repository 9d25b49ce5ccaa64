"""Scaling and log-level changes do not recreate the Ray cluster.

KubeRay's `upgradeStrategy: Recreate` replaces every Ray pod when a pod template changes (a full outage).
The templates, their `worker-sync/revision` annotation included, must therefore stay byte-for-byte the same
when only the number of workers or the log level changes: the worker count is the autoscaler's and KubeRay's
business (fields outside the templates), and the log level reaches the supervisor on the RayJob's command line
(`--log-level`), whose new name makes `run --detached` replace only the supervisor.
"""

from __future__ import annotations

import shlex

import pytest


def pod_templates(rendering) -> dict:
    cluster = rendering.one("RayCluster")["spec"]
    return {
        "head": (cluster["headGroupSpec"]["template"], cluster["headGroupSpec"]["rayStartParams"]),
        "workers": [(g["template"], g["rayStartParams"]) for g in cluster["workerGroupSpecs"]],
    }


@pytest.mark.parametrize(
    "values",
    [
        {"replicaCount": 5},
        {"autoscaling": {"minReplicas": 2, "maxReplicas": 20}},
        {"worker": {"replicas": 4, "minReplicas": 4, "maxReplicas": 8}},
        {"autoscaling": {"enabled": False}, "replicaCount": 6},
    ],
    ids=["replicaCount", "autoscaling-bounds", "kuberay-keys", "fixed-size"],
)
def test_scaling_keeps_the_pods_and_the_supervisor(render, values):
    base = {"autoscaling": {"enabled": False}} if values.get("autoscaling", {}).get("enabled") is False else {}
    before, after = render(base), render(values)
    assert pod_templates(after) == pod_templates(before)
    assert after.one("RayJob")["metadata"]["name"] == before.one("RayJob")["metadata"]["name"]
    assert after.one("RayCluster")["spec"]["workerGroupSpecs"] != before.one("RayCluster")["spec"]["workerGroupSpecs"]


def test_a_log_level_change_replaces_the_supervisor_not_the_pods(render, default_rendering):
    debug = render({"logLevel": "debug"})
    assert pod_templates(debug) == pod_templates(default_rendering)
    job = debug.one("RayJob")
    assert job["metadata"]["name"] != default_rendering.one("RayJob")["metadata"]["name"], "a new run --detached"
    entrypoint = shlex.split(job["spec"]["entrypoint"])
    assert entrypoint[entrypoint.index("--log-level") + 1] == "debug"


def test_what_the_pods_run_still_recreates_them(render, default_rendering):
    """The other side: a new image or new Ray start parameters do change the pods."""
    for values in ({"image": {"tag": "0.2.0"}}, {"autoscaling": {"targetMemoryUtilizationPercentage": 50}}):
        assert pod_templates(render(values)) != pod_templates(default_rendering), values
