"""Helpers shared by the Helm chart tests: scenarios, the parsed rendering, pod and container walkers."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = ROOT / "helm"
RELEASE = "worker-sync"
NAMESPACE = "worker-sync"
SCENARIOS = {
    "default": None,
    "production": CHART_DIR / "values-production.yaml",
}
#: Kinds served by CRDs, which kubernetes-validate cannot check (test_chart_crds.py does).
CRD_KINDS = {"RayCluster", "RayJob", "ServiceMonitor", "PodMonitor", "PrometheusRule"}
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_YAML_LOADER)


def scenario_values(scenario: str) -> dict:
    path = SCENARIOS[scenario]
    return load_yaml(path.read_text()) if path else {}


@dataclass
class Rendering:
    """One `helm template`: the objects (each tagged with its template) and NOTES.txt."""

    values: dict
    files: dict[str, str]
    objects: list[dict] = field(default_factory=list)
    templates: list[str] = field(default_factory=list)
    notes: str = ""

    def __post_init__(self) -> None:
        for path, text in sorted(self.files.items()):
            if path.endswith("NOTES.txt"):
                self.notes = text
                continue
            for doc in yaml.load_all(text, Loader=_YAML_LOADER):
                if doc:
                    self.objects.append(doc)
                    self.templates.append(path.split("/templates/", 1)[1])

    def template_of(self, obj: dict) -> str:
        return next(t for o, t in zip(self.objects, self.templates, strict=True) if o is obj)

    def of_kind(self, kind: str) -> list[dict]:
        return [o for o in self.objects if o["kind"] == kind]

    def get(self, kind: str, name: str) -> dict:
        found = [o for o in self.of_kind(kind) if o["metadata"]["name"] == name]
        assert found, f"no {kind} named {name}; have {[o['metadata']['name'] for o in self.of_kind(kind)]}"
        return found[0]

    def one(self, kind: str) -> dict:
        found = self.of_kind(kind)
        assert len(found) == 1, f"expected one {kind}, found {len(found)}"
        return found[0]

    def kinds(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for o in self.objects:
            counts[o["kind"]] = counts.get(o["kind"], 0) + 1
        return dict(sorted(counts.items()))

    def secret_values(self) -> dict[str, str]:
        """Every value stored in a rendered Secret, decoded, by `secret/key`."""
        values = {}
        for secret in self.of_kind("Secret"):
            name = secret["metadata"]["name"]
            for key, value in (secret.get("data") or {}).items():
                values[f"{name}/{key}"] = base64.b64decode(value).decode()
            for key, value in (secret.get("stringData") or {}).items():
                values[f"{name}/{key}"] = value
        return values


def annotations(obj: dict) -> dict:
    return obj["metadata"].get("annotations") or {}


def pod_specs(obj: dict) -> Iterator[tuple[str, dict]]:
    """(where, pod spec) for every pod template an object carries, custom resources included."""
    kind, name = obj["kind"], obj["metadata"]["name"]
    spec = obj.get("spec") or {}
    if kind == "Pod":
        yield f"Pod/{name}", spec
    elif kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        yield f"{kind}/{name}", spec["template"]["spec"]
    elif kind == "CronJob":
        yield f"CronJob/{name}", spec["jobTemplate"]["spec"]["template"]["spec"]
    elif kind == "RayCluster":
        yield f"RayCluster/{name}/head", spec["headGroupSpec"]["template"]["spec"]
        for group in spec.get("workerGroupSpecs", []):
            yield f"RayCluster/{name}/{group['groupName']}", group["template"]["spec"]
    elif kind == "RayJob" and spec.get("submitterPodTemplate"):
        yield f"RayJob/{name}/submitter", spec["submitterPodTemplate"]["spec"]


def containers(obj: dict) -> Iterator[tuple[str, dict, dict]]:
    """(where, container, pod spec) for every container and init container of an object."""
    for where, pod in pod_specs(obj):
        for c in pod.get("initContainers", []) + pod.get("containers", []):
            yield f"{where}/{c['name']}", c, pod
