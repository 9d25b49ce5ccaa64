"""Every rendered core object validates with kubernetes-validate --strict against Kubernetes 1.30.

Strict schemas reject unknown fields, so a misspelt key fails here as it would with
`kubectl apply --validate=strict`. Pod templates embedded in the RayCluster and the RayJob are checked
as core PodTemplates too (their CRD schemas are checked in test_chart_crds.py).
"""

from __future__ import annotations

import copy

import pytest

from tests.helm.chart_support import CRD_KINDS, pod_specs

KUBE_VERSION = "1.30.0"


@pytest.fixture(scope="session")
def kubernetes_validate():
    return pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate is not installed (pip install -e '.[chart]')"
    )


def validation_errors(kubernetes_validate, obj: dict) -> list[str]:
    where = f"{obj['kind']}/{obj['metadata']['name']}"
    try:
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(p) for p in exc.path)
        return [f"{where}: {path}: {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError as exc:
        # A core kind without a schema means a wrong apiVersion, e.g. policy/v1beta1.
        return [f"{where}: {exc.message}"]
    return []


def test_core_objects_validate_strictly(rendering, kubernetes_validate):
    core = [o for o in rendering.objects if o["kind"] not in CRD_KINDS]
    assert len(core) >= 10
    errors = [e for obj in core for e in validation_errors(kubernetes_validate, obj)]
    assert errors == []


def test_embedded_pod_templates_validate_strictly(rendering, kubernetes_validate):
    errors = []
    checked = 0
    for obj in rendering.objects:
        if obj["kind"] not in ("RayCluster", "RayJob"):
            continue
        templates = [obj["spec"]["headGroupSpec"]["template"]] if obj["kind"] == "RayCluster" else []
        templates += [g["template"] for g in obj["spec"].get("workerGroupSpecs", [])]
        if obj["kind"] == "RayJob" and "submitterPodTemplate" in obj["spec"]:
            templates.append(obj["spec"]["submitterPodTemplate"])
        for i, template in enumerate(templates):
            checked += 1
            name = f"{obj['metadata']['name']}-{i}"
            pod_template = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": name}, "template": template}
            errors += validation_errors(kubernetes_validate, pod_template)
    assert checked == sum(1 for o in rendering.objects for _ in pod_specs(o) if o["kind"] in ("RayCluster", "RayJob"))
    assert errors == []


def test_strict_validation_catches_a_misspelt_field(default_rendering, kubernetes_validate):
    """The check above can fail: an unknown field in a Deployment's container is reported."""
    deployment = copy.deepcopy(default_rendering.of_kind("Deployment")[0])
    deployment["spec"]["template"]["spec"]["containers"][0]["resource"] = {}
    [error] = validation_errors(kubernetes_validate, deployment)
    assert "resource" in error
