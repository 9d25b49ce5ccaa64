"""Least privilege: a Role that reads only the Secrets and the ConfigMap the release names, a NetworkPolicy
for every component whose egress reaches the database ports, DNS, the release and (for the autoscaler) the
Kubernetes API only, secrets that stay the same from one render to the next, and a values schema that
validates `config:` with the config file's own schema and refuses passwords in it."""

from __future__ import annotations

import json

import pytest

from tests.helm.chart_support import CHART_DIR, pod_specs, scenario_values
from tests.helm.config_schema import VALUES_SCHEMA, embedded, render

DATABASE_PORTS = {5432, 3306, 27017}
DNS = {("UDP", 53), ("TCP", 53)}


# --- the Role --------------------------------------------------------------------------------------------


def test_the_role_gets_named_secrets_and_lists_none(rendering):
    rules = rendering.one("Role")["rules"]
    for rule in rules:
        if {"secrets", "configmaps"} & set(rule["resources"]):
            assert rule["verbs"] == ["get"], rule
            assert rule.get("resourceNames"), f"{rule['resources']} without resourceNames"
    secrets = next(r for r in rules if r["resources"] == ["secrets"])["resourceNames"]
    for where, pod in [(w, p) for o in rendering.objects for w, p in pod_specs(o)]:
        for volume in pod.get("volumes", []):
            sources = [volume, *(volume.get("projected") or {}).get("sources", [])]
            for source in sources:
                if "secret" in source:
                    name = source["secret"].get("secretName") or source["secret"].get("name")
                    assert name in secrets, f"{where} mounts {name}, which the Role does not name"


def test_production_names_its_existing_secrets(production_rendering):
    rules = production_rendering.one("Role")["rules"]
    secrets = next(r for r in rules if r["resources"] == ["secrets"])["resourceNames"]
    assert "worker-sync-secret" not in secrets, "production generates no Secret"
    assert {"worker-sync-auth", "worker-sync-postgresql", "worker-sync-http-tls", "worker-sync-redis"} <= set(secrets)


def test_the_autoscaler_rules_come_only_with_autoscaling(render):
    rules = render({"autoscaling": {"enabled": False}}).one("Role")["rules"]
    assert [r["resources"] for r in rules] == [["configmaps"], ["secrets"]]


# --- NetworkPolicies ---------------------------------------------------------------------------------


def pod_templates(rendering) -> list[tuple[str, dict]]:
    """(where, labels) of every pod the chart runs."""
    found = []
    for obj in rendering.objects:
        spec = obj.get("spec", {})
        if obj["kind"] == "RayCluster":
            found.append(("ray head", spec["headGroupSpec"]["template"]["metadata"]["labels"]))
            found += [(f"ray {g['groupName']}", g["template"]["metadata"]["labels"]) for g in spec["workerGroupSpecs"]]
        elif obj["kind"] in ("Deployment", "Job"):
            found.append((f"{obj['kind']}/{obj['metadata']['name']}", spec["template"]["metadata"]["labels"]))
        elif obj["kind"] == "CronJob":
            labels = spec["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
            found.append((f"CronJob/{obj['metadata']['name']}", labels))
        elif obj["kind"] == "Pod":
            found.append((f"Pod/{obj['metadata']['name']}", obj["metadata"]["labels"]))
    return found


def selects(policy: dict, labels: dict) -> bool:
    selector = policy["spec"]["podSelector"]
    if not all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items()):
        return False
    return all(labels.get(e["key"]) in e["values"] for e in selector.get("matchExpressions", []))


def test_every_pod_of_the_chart_has_a_network_policy(rendering):
    policies = rendering.of_kind("NetworkPolicy")
    assert len(policies) >= 8
    for where, labels in pod_templates(rendering):
        mine = [p["metadata"]["name"] for p in policies if selects(p, labels)]
        assert mine, f"{where}: no NetworkPolicy selects it"
    for policy in policies:
        assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"], policy["metadata"]["name"]


def egress_ports(rule: dict) -> set[tuple[str, int]]:
    return {(p.get("protocol", "TCP"), p["port"]) for p in rule.get("ports", [])}


def test_egress_goes_to_the_databases_dns_and_the_release_only(default_rendering):
    for policy in default_rendering.of_kind("NetworkPolicy"):
        name = policy["metadata"]["name"]
        for rule in policy["spec"]["egress"]:
            ports = egress_ports(rule)
            peers = rule.get("to") or []
            assert ports or peers, f"{name}: a rule that allows every port to everywhere"
            in_release = peers and all(
                p.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/instance") == "worker-sync"
                for p in peers
            )
            if in_release:
                continue
            tcp = {port for proto, port in ports if proto == "TCP"}
            allowed = DATABASE_PORTS | {53}
            if name == "worker-sync":  # the Ray pods: and the Kubernetes API, for the autoscaler
                allowed |= {443, 6443}
            if name in ("worker-sync-alertmanager", "worker-sync-backup"):  # receivers; S3
                allowed |= {443}
            assert tcp <= allowed, f"{name}: egress to {sorted(tcp - allowed)}"
    redis = default_rendering.get("NetworkPolicy", "worker-sync-redis")
    assert redis["spec"]["egress"] == [], "Redis sends nothing"


def test_the_kubernetes_api_is_reached_by_address(render):
    policy = render({"networkPolicy": {"kubeApiCidrs": ["10.0.0.1/32"]}}).get("NetworkPolicy", "worker-sync")
    rule = next(r for r in policy["spec"]["egress"] if ("TCP", 6443) in egress_ports(r))
    assert rule["to"] == [{"ipBlock": {"cidr": "10.0.0.1/32"}}]


def test_the_ingress_controller_reaches_the_http_port_only_with_an_ingress(render, default_rendering):
    controller = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}]
    rules = default_rendering.get("NetworkPolicy", "worker-sync")["spec"]["ingress"]
    assert not [r for r in rules if r.get("from") == controller]
    values = {"ingress": {"enabled": True}}
    rules = render(values).get("NetworkPolicy", "worker-sync")["spec"]["ingress"]
    [rule] = [r for r in rules if r.get("from") == controller]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8080}]


# --- secrets stable across renders -------------------------------------------------------------------


def test_production_renders_the_same_twice(render):
    """Nothing generated: an offline render (Argo CD, Flux) gives the same objects every time."""
    values = scenario_values("production")
    assert values["auth"]["allowGenerated"] is False
    first, second = render(values), render(values)
    assert first.files == second.files
    assert not first.of_kind("Secret")


def test_without_allow_generated_a_missing_secret_fails_the_render(render, helm):
    with pytest.raises(helm.HelmRenderError, match=r"auth\.auditSigningKey, auth\.httpToken, grafana\.adminPassword"):
        render({"auth": {"allowGenerated": False}})


def test_generated_values_are_why_offline_renders_differ(render):
    """What allowGenerated=false prevents: without a cluster to read the Secret back, each render generates anew."""
    key = "worker-sync-secret/audit-signing-key"
    assert render({}).secret_values()[key] != render({}).secret_values()[key]
    # A value given (or read back by `lookup` on a live install) is kept as is.
    fixed = {"auth": {"auditSigningKey": "ab" * 32}}
    assert render(fixed).secret_values()[key] == render(fixed).secret_values()[key] == "ab" * 32


# --- values.schema.json validates `config:` ------------------------------------------------------------


def test_the_embedded_config_schema_is_current():
    text = VALUES_SCHEMA.read_text()
    assert text == render(embedded(json.loads(text))), "stale: python -m tests.helm.config_schema --write"


@pytest.mark.parametrize(
    ("config", "where"),
    [
        (
            {
                "nodes": [
                    {
                        "name": "n",
                        "engine": "postgresql",
                        "host": "h",
                        "database": "d",
                        "username": "u",
                        "password": "p",
                    }
                ]
            },
            "/config/nodes/0",
        ),
        (
            {
                "databases": {
                    "mysql": {"engine": "mysql", "host": "h", "database": "d", "username": "u", "password": "p"}
                }
            },
            "/config/databases/mysql",
        ),
        (
            {
                "nodes": [
                    {
                        "name": "n",
                        "engine": "mongodb",
                        "host": "h",
                        "database": "d",
                        "username": "u",
                        "tls": {"mode": "require", "password": "p"},
                    }
                ]
            },
            "/config/nodes/0",
        ),
    ],
    ids=["nodes", "databases", "nested"],
)
def test_the_schema_refuses_a_password_in_config(chart, helm, config, where):
    with pytest.raises(helm.HelmValuesError, match=f"(?s){where}.*additional properties 'password' not allowed"):
        chart.validate_schema({"config": config})


def test_the_schema_checks_config_like_the_config_file(chart, helm):
    with pytest.raises(helm.HelmValuesError, match="/config/supervisor/applier_shards"):
        chart.validate_schema({"config": {"supervisor": {"applier_shards": 0}}})
    with pytest.raises(helm.HelmValuesError, match="additional properties 'tabels' not allowed"):
        chart.validate_schema({"config": {"links": [{"name": "l", "source": "a", "target": "b", "tabels": []}]}})
    node = {"name": "n", "engine": "postgresql", "host": "h", "database": "d", "username": "u"}
    chart.validate_schema({"config": {"nodes": [{**node, "password_file": "/run/secrets/x"}]}})


def test_values_files_carry_no_password_in_config():
    for path in CHART_DIR.glob("values*.yaml"):
        assert "password:" not in path.read_text().split("\nconfig:", 1)[1].split("\n\n", 1)[0], path.name
