"""Policy: resources and a locked-down security context on every container, the Pod Security Standard
`restricted`, secrets kept out of ConfigMaps, and pinned images."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.helm.chart_support import CHART_DIR, ROOT, containers, load_yaml, pod_specs

#: Volume types the `restricted` Pod Security Standard allows.
RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
#: Distinctive inline secrets, to look for in everything that is not a Secret.
INLINE_SECRETS = {
    "databases": {
        "postgresql": {"password": "pg-Pa55-4f1c2a"},
        "mysql": {"password": "my-Pa55-9b7d3e"},
        "mongodb": {"password": "mg-Pa55-2c8e5f"},
    },
    "auth": {"auditSigningKey": "ab" * 32, "httpToken": "tok-5e3f0a9d77", "auditEncryptionKey": "cd" * 32},
    "grafana": {"adminPassword": "gf-Pa55-71aa0c"},
    "redis": {"auth": {"password": "rd-Pa55-0e4b19"}},
    "config": {"audit": {"encrypted_fields": ["public.customers.email"]}},
}


def all_containers(rendering):
    found = [(where, c, pod) for o in rendering.objects for where, c, pod in containers(o)]
    assert found
    return found


def test_every_container_has_cpu_and_memory_requests_and_limits(rendering):
    for where, container, _ in all_containers(rendering):
        resources = container.get("resources") or {}
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources.get(bound) or {}), f"{where}: {bound} {resources}"


def test_the_autoscaler_sidecar_has_resources_and_the_security_context(rendering):
    options = rendering.one("RayCluster")["spec"]["autoscalerOptions"]
    assert {"cpu", "memory"} <= set(options["resources"]["limits"])
    assert options["securityContext"]["readOnlyRootFilesystem"] is True
    assert options["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_every_container_runs_as_1001_read_only_without_capabilities(rendering):
    for where, container, pod in all_containers(rendering):
        sc = container.get("securityContext") or {}
        assert sc.get("runAsNonRoot") is True, where
        assert sc.get("runAsUser") == 1001, where
        assert sc.get("readOnlyRootFilesystem") is True, where
        assert sc.get("allowPrivilegeEscalation") is False, where
        assert sc.get("capabilities") == {"drop": ["ALL"]}, where
        assert "fsGroup" not in sc and "enabled" not in sc, f"{where}: pod-level or chart keys in the container"
        pod_sc = pod.get("securityContext") or {}
        assert pod_sc.get("fsGroup") == 1001 and pod_sc.get("runAsUser") == 1001, where


def test_every_pod_meets_the_restricted_pod_security_standard(rendering):
    for obj in rendering.objects:
        for where, pod in pod_specs(obj):
            for key in ("hostNetwork", "hostPID", "hostIPC"):
                assert not pod.get(key), f"{where}: {key}"
            assert (pod.get("securityContext") or {}).get("seccompProfile") == {"type": "RuntimeDefault"}, where
            for volume in pod.get("volumes", []):
                kinds = set(volume) - {"name"}
                assert kinds <= RESTRICTED_VOLUMES, f"{where}: volume {volume['name']} is {kinds}"
            for c in pod.get("initContainers", []) + pod.get("containers", []):
                sc = c.get("securityContext") or {}
                assert not sc.get("privileged"), where
                assert all("hostPort" not in p for p in c.get("ports", [])), where
                added = (sc.get("capabilities") or {}).get("add") or []
                assert set(added) <= {"NET_BIND_SERVICE"}, where


def test_only_the_autoscaling_head_mounts_an_api_token(rendering):
    sa = rendering.one("ServiceAccount")
    assert sa["automountServiceAccountToken"] is False
    for obj in rendering.objects:
        for where, pod in pod_specs(obj):
            expected = where.endswith("/head") and rendering.one("RayCluster")["spec"]["enableInTreeAutoscaling"]
            assert pod.get("automountServiceAccountToken") is expected, where


@pytest.fixture(scope="session")
def inline_secrets_rendering(render):
    return render(INLINE_SECRETS)


def test_no_secret_value_outside_secrets(inline_secrets_rendering):
    r = inline_secrets_rendering
    secrets = r.secret_values()
    planted = [
        "pg-Pa55-4f1c2a",
        "my-Pa55-9b7d3e",
        "mg-Pa55-2c8e5f",
        "ab" * 32,
        "cd" * 32,
        "tok-5e3f0a9d77",
        "gf-Pa55-71aa0c",
        "rd-Pa55-0e4b19",
    ]
    assert sorted(planted) == sorted(v for k, v in secrets.items() if k.startswith("worker-sync-secret/"))
    for obj in r.objects:
        if obj["kind"] == "Secret":
            continue
        text = load_yaml_dump(obj)
        for value in secrets.values():
            if len(value) >= 8:
                assert value not in text, f"a Secret value appears in {obj['kind']}/{obj['metadata']['name']}"


def test_generated_secrets_stay_in_the_secret(default_rendering):
    generated = default_rendering.secret_values()
    assert {"worker-sync-secret/audit-signing-key", "worker-sync-secret/http-token"} <= set(generated)
    assert re.fullmatch(r"[0-9a-f]{64}", generated["worker-sync-secret/audit-signing-key"])
    for config_map in default_rendering.of_kind("ConfigMap"):
        text = load_yaml_dump(config_map)
        assert not [k for k, v in generated.items() if v in text], config_map["metadata"]["name"]


def test_config_names_secret_files_never_secrets(rendering):
    config = load_yaml(rendering.get("ConfigMap", "worker-sync-config")["data"]["config.yaml"])
    found = []

    def walk(node, path):
        if isinstance(node, dict):
            for key, value in node.items():
                if re.search(r"password|token|secret|key", key) and not re.search(r"_(file|env)$", key):
                    found.append(f"{path}.{key}")
                walk(value, f"{path}.{key}")

    walk(config, "$")
    assert found == []
    assert config["audit"]["signing_key_file"].startswith("/run/secrets/worker-sync/")
    assert config["http"]["token_file"] == "/run/secrets/worker-sync/http-token"


def load_yaml_dump(obj) -> str:
    return yaml.safe_dump(obj)


def image_refs(rendering) -> list[str]:
    return [c["image"] for _, c, _ in all_containers(rendering)]


def test_production_pins_every_image(production_rendering):
    values = load_yaml((CHART_DIR / "values-production.yaml").read_text())
    assert values["image"]["tag"] not in ("", "latest") or values["image"].get("digest")
    for ref in image_refs(production_rendering):
        name, _, tag = ref.rpartition(":")
        assert "@sha256:" in ref or (name and tag and tag != "latest" and "/" not in tag), ref
    assert (
        production_rendering.one("RayCluster")["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["image"]
        == f"registry.example.com/worker-sync/worker-sync:{values['image']['tag']}"
    )


def test_default_image_is_the_pinned_app_version_not_latest(default_rendering):
    app_version = load_yaml((CHART_DIR / "Chart.yaml").read_text())["appVersion"]
    for ref in image_refs(default_rendering):
        assert not ref.endswith(":latest"), ref
    assert f"worker-sync:{app_version}" in image_refs(default_rendering)


def test_image_digest_replaces_the_tag(render):
    digest = "sha256:" + "0" * 64
    r = render({"image": {"digest": digest}})
    assert f"worker-sync@{digest}" in image_refs(r)


def test_dockerfile_matches_the_chart():
    dockerfile = (ROOT / "Dockerfile").read_text()
    values = load_yaml((CHART_DIR / "values.yaml").read_text())
    [base] = re.findall(r"^FROM\s+(\S+)", dockerfile, re.MULTILINE)
    assert base == f"rayproject/ray:{values['ray']['version']}-py311"
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.MULTILINE)
    assert users[-1] == f"{values['securityContext']['runAsUser']}:{values['securityContext']['runAsGroup']}"
    assert re.search(r"^ENV RAY_AUTH_MODE=token$", dockerfile, re.MULTILINE)
    assert f"EXPOSE {values['service']['containerPort']}" in dockerfile
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ignored[ignored.index("*") + 1 :][:1] == ["!pyproject.toml"], "the build context is an allow-list"
