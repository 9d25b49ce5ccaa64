"""The backup CronJob sees the committed positions: it mounts the head's state volume read-only at the path of
the rendered config's `supervisor.state_dir`, runs on the head's node while that volume is ReadWriteOnce
(required podAffinity to the head pod), and every variant validates against the Kubernetes schema.
"""

from __future__ import annotations

import posixpath

import pytest

from config import parse_config
from tests.helm.chart_support import pod_specs
from tests.helm.test_chart_k8s_schema import validation_errors

BACKUP = "worker-sync-backup"
HOSTNAME = "kubernetes.io/hostname"
ALWAYS = {"cronJobs": {"backup": {"positions": {"coschedule": "always"}}}}
POSITIONS_OFF = {"cronJobs": {"backup": {"positions": {"enabled": False}}}}


@pytest.fixture(scope="module")
def k8s_errors():
    """Strict Kubernetes 1.30 schema errors of one object (see test_chart_k8s_schema.py)."""
    module = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is not installed")
    return lambda obj: validation_errors(module, obj)


def backup_pod(rendering) -> dict:
    return rendering.get("CronJob", BACKUP)["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def state_dir(rendering) -> str:
    text = rendering.get("ConfigMap", "worker-sync-config")["data"]["config.yaml"]
    return parse_config(text, source="helm:config.yaml").supervisor.state_dir


def head_template(rendering) -> dict:
    return rendering.one("RayCluster")["spec"]["headGroupSpec"]["template"]


def claim_mount(pod: dict, container: dict, claim: str) -> tuple[dict, dict]:
    """The pod's volume of ``claim`` and the container's mount of it."""
    [volume] = [v for v in pod["volumes"] if (v.get("persistentVolumeClaim") or {}).get("claimName") == claim]
    [mount] = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
    return volume, mount


def head_claim(rendering) -> tuple[str, str]:
    """The head's state claim and where the head mounts it."""
    pod = head_template(rendering)["spec"]
    [volume] = [v for v in pod["volumes"] if v["name"] == "checkpoints"]
    claim = volume["persistentVolumeClaim"]["claimName"]
    _, mount = claim_mount(pod, pod["containers"][0], claim)
    return claim, mount["mountPath"]


def within(path: str, mount_path: str) -> bool:
    path, mount_path = posixpath.normpath(path), posixpath.normpath(mount_path)
    return path == mount_path or path.startswith(mount_path + "/")


def pod_templates(rendering):
    """(where, labels) of every pod template the rendering creates."""
    for obj in rendering.objects:
        for where, _ in pod_specs(obj):
            spec = obj["spec"]
            if obj["kind"] == "RayCluster":
                group = where.rsplit("/", 1)[1]
                template = (
                    spec["headGroupSpec"]["template"]
                    if group == "head"
                    else next(g["template"] for g in spec["workerGroupSpecs"] if g["groupName"] == group)
                )
            elif obj["kind"] == "CronJob":
                template = spec["jobTemplate"]["spec"]["template"]
            elif obj["kind"] == "RayJob":
                template = spec["submitterPodTemplate"]
            elif obj["kind"] == "Pod":
                template = obj
            else:
                template = spec["template"]
            yield where, (template.get("metadata") or {}).get("labels") or {}


def assert_mounts_state_read_only(rendering) -> dict:
    pod = backup_pod(rendering)
    [container] = pod["containers"]
    claim, head_path = head_claim(rendering)
    volume, mount = claim_mount(pod, container, claim)
    assert mount["readOnly"] is True
    assert volume["persistentVolumeClaim"]["readOnly"] is True  # no fsGroup walk over the head's live files
    # The same files as the head sees, at the path the config names: `backup --config` finds them there.
    assert mount["mountPath"] == head_path
    assert within(state_dir(rendering), mount["mountPath"])
    args = container["args"]
    assert args[0] == "backup"
    assert args[args.index("--config") + 1] == "/etc/worker-sync/config.yaml"
    return pod


def assert_coscheduled_with_head(rendering, pod: dict) -> None:
    [term] = pod["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == HOSTNAME
    selector = term["labelSelector"]["matchLabels"]
    assert set(term["labelSelector"]) == {"matchLabels"}
    head_labels = head_template(rendering)["metadata"]["labels"]
    assert selector.items() <= head_labels.items()
    # The selector names the head and nothing else: no other pod the chart creates carries those labels.
    matching = [where for where, labels in pod_templates(rendering) if selector.items() <= labels.items()]
    assert matching == ["RayCluster/worker-sync/head"]
    assert "namespaces" not in term and "namespaceSelector" not in term  # the release's own namespace


def test_backup_mounts_the_state_volume_read_only_where_state_dir_is(rendering, k8s_errors):
    pod = assert_mounts_state_read_only(rendering)
    assert_coscheduled_with_head(rendering, pod)  # both values files keep the default ReadWriteOnce
    assert k8s_errors(rendering.get("CronJob", BACKUP)) == []


def test_backup_state_dir_follows_the_mount_path(render, k8s_errors):
    r = render({"persistence": {"mountPath": "/data/ws"}})
    assert state_dir(r) == "/data/ws/state"
    assert_mounts_state_read_only(r)
    assert k8s_errors(r.get("CronJob", BACKUP)) == []


def test_backup_uses_an_existing_claim(render, k8s_errors):
    r = render({"persistence": {"existingClaim": "ws-state"}})
    assert head_claim(r)[0] == "ws-state"
    pod = assert_mounts_state_read_only(r)
    assert_coscheduled_with_head(r, pod)
    assert k8s_errors(r.get("CronJob", BACKUP)) == []


def test_backup_follows_the_head_onto_tainted_nodes(render, k8s_errors):
    tolerations = [{"key": "dedicated", "operator": "Equal", "value": "ray-head", "effect": "NoSchedule"}]
    r = render({"head": {"tolerations": tolerations}})
    pod = backup_pod(r)
    assert pod["tolerations"] == tolerations
    assert_coscheduled_with_head(r, pod)
    assert k8s_errors(r.get("CronJob", BACKUP)) == []


@pytest.mark.parametrize("mode", ["ReadWriteMany", "ReadOnlyMany"])
def test_a_volume_any_node_mounts_needs_no_coscheduling(render, k8s_errors, mode):
    r = render({"persistence": {"accessModes": [mode]}})
    pod = assert_mounts_state_read_only(r)
    assert "affinity" not in pod and "tolerations" not in pod
    assert k8s_errors(r.get("CronJob", BACKUP)) == []
    forced = render(
        {"persistence": {"accessModes": [mode]}, "cronJobs": {"backup": {"positions": {"coschedule": "always"}}}}
    )
    assert_coscheduled_with_head(forced, backup_pod(forced))


def test_coschedule_never_leaves_placement_to_the_operator(render):
    r = render({"cronJobs": {"backup": {"positions": {"coschedule": "never"}}}})
    pod = assert_mounts_state_read_only(r)
    assert "affinity" not in pod


@pytest.mark.parametrize(
    "values",
    [{"persistence": {"enabled": False}}, POSITIONS_OFF],
    ids=["no-state-volume", "positions-off"],
)
def test_no_state_mount_without_a_state_volume_or_when_off(render, k8s_errors, values):
    r = render(values)
    pod = backup_pod(r)
    assert [v["name"] for v in pod["volumes"] if "persistentVolumeClaim" in v] == []
    assert "affinity" not in pod
    assert k8s_errors(r.get("CronJob", BACKUP)) == []


def test_read_write_once_pod_refuses_a_backup_of_positions(render, helm):
    with pytest.raises(helm.HelmRenderError, match=r"cronJobs\.backup\.positions\.enabled: persistence\.accessModes"):
        render({"persistence": {"accessModes": ["ReadWriteOncePod"]}})
    off = {"positions": {"enabled": False}}
    with pytest.raises(helm.HelmRenderError, match=r"cronJobs\.verify\.positions\.enabled: persistence\.accessModes"):
        render({"persistence": {"accessModes": ["ReadWriteOncePod"]}, "cronJobs": {"backup": off}})
    render({"persistence": {"accessModes": ["ReadWriteOncePod"]}, "cronJobs": {"backup": off, "verify": off}})


def test_positions_coschedule_rejects_unknown_modes(render, helm):
    with pytest.raises(helm.HelmValuesError, match="/cronJobs/backup/positions/coschedule"):
        render({"cronJobs": {"backup": {"positions": {"coschedule": "sometimes"}}}})
