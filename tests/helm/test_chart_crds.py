"""RayCluster, RayJob, ServiceMonitor, PodMonitor and PrometheusRule validate against their CRDs' openAPIV3Schema.

The CRD files are not part of the project: they are read from the folder named by WORKER_SYNC_CRD_DIR
(KubeRay's ray.io_*.yaml and the Prometheus Operator's monitoring.coreos.com_*.yaml). Without it these
tests skip and say so.

Validation is as strict as the API server with `--validate=strict`: an object that declares properties
rejects unknown ones unless it preserves unknown fields. CEL rules (x-kubernetes-validations) are not
evaluated.
"""

from __future__ import annotations

import copy
import os
from functools import cache
from pathlib import Path

import pytest

from tests.helm.chart_support import load_yaml

CRD_FILES = {
    "RayCluster": "ray.io_rayclusters.yaml",
    "RayJob": "ray.io_rayjobs.yaml",
    "ServiceMonitor": "monitoring.coreos.com_servicemonitors.yaml",
    "PodMonitor": "monitoring.coreos.com_podmonitors.yaml",
    "PrometheusRule": "monitoring.coreos.com_prometheusrules.yaml",
}


@pytest.fixture(scope="session")
def crd_dir() -> Path:
    value = os.environ.get("WORKER_SYNC_CRD_DIR")
    if not value:
        pytest.skip(
            "WORKER_SYNC_CRD_DIR is not set: RayCluster, RayJob, ServiceMonitor and PrometheusRule "
            "were NOT validated against their CRD schemas"
        )
    path = Path(value)
    assert path.is_dir(), f"WORKER_SYNC_CRD_DIR={value} is not a directory"
    return path


@pytest.fixture(scope="session")
def jsonschema():
    return pytest.importorskip("jsonschema", reason="jsonschema is not installed (pip install -e '.[chart]')")


def strict_json_schema(node):
    """An openAPIV3Schema as a draft-4 JSON Schema that rejects unknown fields and honours `nullable`."""
    if isinstance(node, list):
        return [strict_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: strict_json_schema(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
    if node.get("x-kubernetes-embedded-resource"):
        props = out.setdefault("properties", {})
        for key in ("apiVersion", "kind"):
            props.setdefault(key, {"type": "string"})
        props.setdefault("metadata", {"type": "object"})
    if (
        out.get("type") == "object"
        and "properties" in out
        and "additionalProperties" not in out
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    out.pop("nullable", None)
    return out


@cache
def crd_schema(path: Path, version: str) -> dict:
    crd = load_yaml(path.read_text())
    [served] = [v for v in crd["spec"]["versions"] if v["name"] == version]
    assert served["served"], f"{path.name}: version {version} is not served"
    return strict_json_schema(served["schema"]["openAPIV3Schema"])


def crd_errors(jsonschema, crd_dir: Path, obj: dict) -> list[str]:
    group, _, version = obj["apiVersion"].partition("/")
    path = crd_dir / CRD_FILES[obj["kind"]]
    assert group in path.name, f"{obj['kind']} has apiVersion {obj['apiVersion']}, not one of {path.name}"
    validator = jsonschema.Draft4Validator(crd_schema(path, version))
    where = f"{obj['kind']}/{obj['metadata']['name']}"
    return [
        f"{where}: {'.'.join(str(p) for p in e.absolute_path)}: {e.message}"
        for e in sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path))
    ]


def test_custom_resources_match_their_crds(rendering, crd_dir, jsonschema):
    custom = [o for o in rendering.objects if o["kind"] in CRD_FILES]
    assert sorted({o["kind"] for o in custom}) == sorted(CRD_FILES)
    errors = [e for obj in custom for e in crd_errors(jsonschema, crd_dir, obj)]
    assert errors == []


@pytest.mark.parametrize(
    ("kind", "mutate", "expected"),
    [
        ("RayCluster", lambda o: o["spec"]["headGroupSpec"].update(rayStartParam={}), "rayStartParam"),
        ("RayCluster", lambda o: o["spec"]["workerGroupSpecs"][0].update(maxReplicas="10"), "'10' is not of type"),
        ("RayJob", lambda o: o["spec"].update(shutdownAfterJobsFinish=False), "shutdownAfterJobsFinish"),
        ("ServiceMonitor", lambda o: o["spec"]["endpoints"][0].update(interval=30), "30 is not of type"),
        ("PrometheusRule", lambda o: o["spec"]["groups"][0]["rules"][0].pop("expr"), "'expr' is a required"),
    ],
)
def test_crd_validation_catches_mistakes(default_rendering, crd_dir, jsonschema, kind, mutate, expected):
    """The check above can fail: a typo, a wrong type or a missing field in each kind is reported."""
    obj = copy.deepcopy(default_rendering.one(kind))
    mutate(obj)
    errors = crd_errors(jsonschema, crd_dir, obj)
    assert any(expected in e for e in errors), errors
