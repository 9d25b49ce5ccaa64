"""values.yaml is fully documented (`## @param`), its schema and README table agree with it, and the
seed's keys and defaults are kept.

`python tests/helm/test_chart_docs.py --write` regenerates README.md's Parameters table.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml

CHART_DIR = Path(__file__).resolve().parents[2] / "helm"
VALUES = CHART_DIR / "values.yaml"
README = CHART_DIR / "README.md"
START, END = "<!-- parameters:start -->", "<!-- parameters:end -->"
PARAM = re.compile(r"^\s*## @param (\S+) (.+)$")
SECTION = re.compile(r"^## @section (.+)$")

#: The seed README's values, key by key, with its defaults. Two were unsafe and changed (see README.md).
SEED_DEFAULTS = {
    "replicaCount": 3,
    "image.repository": "worker-sync",
    "image.pullPolicy": "IfNotPresent",
    **{
        f"databases.{engine}.{key}": value
        for engine, port in (("postgresql", 5432), ("mysql", 3306), ("mongodb", 27017))
        for key, value in {
            "enabled": True,
            "host": f"{engine}.default.svc.cluster.local",
            "port": port,
            "database": "audit_db",
            "username": "audit_user",
        }.items()
    },
    "prometheus.enabled": True,
    "prometheus.persistence.enabled": True,
    "prometheus.persistence.size": "50Gi",
    "prometheus.retention": "30d",
    "grafana.enabled": True,
    "grafana.persistence.enabled": True,
    "grafana.persistence.size": "10Gi",
    "alertmanager.enabled": True,
    "alertmanager.persistence.enabled": True,
    "alertmanager.persistence.size": "5Gi",
    "autoscaling.enabled": True,
    "autoscaling.minReplicas": 3,
    "autoscaling.maxReplicas": 10,
    "autoscaling.targetCPUUtilizationPercentage": 70,
    "autoscaling.targetMemoryUtilizationPercentage": 80,
    "networkPolicy.enabled": True,
    "networkPolicy.ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"name": "api-gateway"}}}]}],
    "networkPolicy.egress": [
        {
            "to": [],
            "ports": [
                {"protocol": "TCP", "port": 5432},
                {"protocol": "TCP", "port": 3306},
                {"protocol": "TCP", "port": 27017},
            ],
        }
    ],
    "securityContext.enabled": True,
    "securityContext.runAsNonRoot": True,
    "securityContext.runAsUser": 1001,
    "securityContext.fsGroup": 1001,
    "securityContext.capabilities": {"drop": ["ALL"]},
    "podSecurityContext.enabled": True,
    "podSecurityContext.fsGroup": 1001,
    "podSecurityContext.runAsUser": 1001,
    "podSecurityContext.runAsGroup": 1001,
    "rbac.create": True,
    "cronJobs.backup.enabled": True,
    "cronJobs.backup.schedule": "0 2 * * *",
    "cronJobs.backup.retentionDays": 30,
    "cronJobs.backup.s3.enabled": True,
    "cronJobs.backup.s3.bucket": "worker-sync-backups",
    "cronJobs.backup.s3.region": "us-west-2",
}
#: Seed keys kept with a safe default instead of the seed's: key -> (seed default, default now).
SEED_CHANGED = {"image.tag": ("latest", ""), "grafana.adminPassword": ("secure-password", "")}
#: Seed keys whose structured default gave way to a safer one, explained in README.md's "Changes from the seed".
SEED_REPLACED = {
    "rbac.rules": [
        {"apiGroups": [""], "resources": ["pods", "services", "endpoints"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["configmaps", "secrets"], "verbs": ["get", "list"]},
    ],
    "alerts.queueBacklog.threshold": 1000,
}
#: The seed mentions `--set logLevel=debug` without a default.
SEED_KEYS_WITHOUT_DEFAULT = {"logLevel"}


def lookup(values: dict, dotted: str):
    node = values
    for part in dotted.split("."):
        node = node[part]
    return node


def params() -> list[tuple[str | None, str, str]]:
    """(section, key, description) of every `## @param`, in file order."""
    out, section = [], None
    for line in VALUES.read_text().splitlines():
        if m := SECTION.match(line):
            section = m.group(1)
        elif m := PARAM.match(line):
            out.append((section, m.group(1), m.group(2)))
    return out


def leaves(node, prefix=""):
    """Dotted paths of every key of values.yaml, descending into maps only."""
    for key, value in node.items():
        path = f"{prefix}{key}"
        yield path
        if isinstance(value, dict) and value:
            yield from leaves(value, f"{path}.")


def parameters_table() -> str:
    values = yaml.safe_load(VALUES.read_text())
    lines, current = [], object()
    for section, key, description in params():
        if section != current:
            current = section
            lines += ["", f"### {section}", "", "| Name | Description | Value |", "|------|-------------|-------|"]
        default = json.dumps(lookup(values, key))
        if len(default) > 60:
            default = "see values.yaml"
        lines.append(f"| `{key}` | {description.replace('|', '&#124;')} | `{default}` |")
    return "\n".join(lines[1:])


def readme_with_table(text: str) -> str:
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{parameters_table()}\n{END}{tail}"


def test_every_param_annotation_names_a_key():
    values = yaml.safe_load(VALUES.read_text())
    keys = [key for _, key, _ in params()]
    assert len(keys) == len(set(keys)), "a key is annotated twice"
    for key in keys:
        lookup(values, key)


def test_every_key_is_documented_by_itself_or_a_parent():
    values = yaml.safe_load(VALUES.read_text())
    documented = {key for _, key, _ in params()}
    undocumented = [
        path
        for path in leaves(values)
        if not any(path == d or path.startswith(f"{d}.") for d in documented)
        and not any(d.startswith(f"{path}.") for d in documented)
    ]
    assert undocumented == []


def test_schema_knows_every_documented_key():
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    for _, key, _ in params():
        node = schema
        for part in key.split("."):
            assert part in node.get("properties", {}), f"values.schema.json has no {key}"
            node = node["properties"][part]
    assert schema["additionalProperties"] is False


def test_readme_parameters_table_is_current():
    text = README.read_text()
    assert text == readme_with_table(text), "README.md is stale: python tests/helm/test_chart_docs.py --write"


def test_seed_keys_and_defaults_are_kept():
    values = yaml.safe_load(VALUES.read_text())
    for key, seed_default in SEED_DEFAULTS.items():
        assert lookup(values, key) == seed_default, key
    for key in SEED_KEYS_WITHOUT_DEFAULT:
        lookup(values, key)


def test_unsafe_seed_defaults_are_replaced_and_explained():
    values = yaml.safe_load(VALUES.read_text())
    readme = README.read_text()
    for key, (seed_default, safe_default) in SEED_CHANGED.items():
        assert lookup(values, key) == safe_default, key
        assert f'"{seed_default}"' in readme or f"`{seed_default}`" in readme, f"README does not explain {key}"
    assert "PodSecurityPolicy" in readme and "Pod Security Admission" in readme
    changes = readme.split("## Changes from the seed", 1)[1].split("\n## ", 1)[0]
    for key, seed_default in SEED_REPLACED.items():
        assert lookup(values, key) != seed_default, key
        assert f"`{key}`" in changes, f"README's Changes from the seed does not explain {key}"


def test_readme_keeps_the_seed_sections():
    readme = README.read_text()
    for heading in (
        "## Features",
        "## Prerequisites",
        "## Installation",
        "## Configuration",
        "## Deployed components",
        "## Useful commands",
        "## Testing",
        "## Metrics and alerts",
        "## Troubleshooting",
        "## Security",
        "## Backup and recovery",
        "## Upgrades",
        "## Development",
        "## Changes from the seed",
        "## Parameters",
    ):
        assert heading in readme, heading
    for name in (
        "test-connection",
        "test-database",
        "test-redis",
        "test-prometheus",
        "test-grafana",
        "test-sync-functionality",
        "WorkerSyncDown",
        "HighSyncLag",
        "HighErrorRate",
        "QueueBacklog",
        "HighConflictRate",
    ):
        assert name in readme, name


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        README.write_text(readme_with_table(README.read_text()))
    else:
        print(parameters_table())
