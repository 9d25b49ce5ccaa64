"""The Worker-Sync config the chart renders is valid, matches config/example.yaml, and the command lines
the chart runs parse with the real `worker-sync` CLI."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from actors.cli import build_parser
from config import parse_config
from tests.helm.chart_support import CHART_DIR, ROOT, containers, load_yaml

#: Keys of the config that the chart sets itself (from other values); `config:` must not carry them.
CHART_OWNED = {
    "audit": {"signing_key_file", "signing_key_env", "encryption_key_file", "checkpoint_export_dir"},
    "supervisor": {"ray_address", "state_dir", "actor_cpus", "actor_memory_bytes"},
}
SEED_DATABASE_KEYS = ("host", "port", "database", "username")
EXAMPLE = ROOT / "config" / "example.yaml"


def rendered_config(rendering) -> str:
    return rendering.get("ConfigMap", "worker-sync-config")["data"]["config.yaml"]


def worker_sync() -> str:
    """The project's own `worker-sync` executable (the virtualenv's): without it the install is broken."""
    exe = shutil.which("worker-sync", path=str(ROOT / ".venv" / "bin")) or shutil.which("worker-sync")
    if exe is None:
        pytest.fail("no `worker-sync` executable in .venv/bin or on PATH: the project is not installed (make venv)")
    return exe


def check_config(path: Path, *options: str) -> tuple[int, str]:
    """`worker-sync check-config [OPTIONS] FILE`: its exit code and its output (stdout then stderr)."""
    result = subprocess.run(
        [worker_sync(), "check-config", *options, str(path)], capture_output=True, text=True, timeout=120
    )
    return result.returncode, result.stdout + result.stderr


def test_rendered_config_passes_the_config_schema(rendering):
    parsed = parse_config(rendered_config(rendering), source="helm:config.yaml")
    assert parsed.supervisor.ray_address == "auto"
    assert parsed.http.host == "0.0.0.0"
    assert parsed.http.token_env is None


def test_rendered_config_passes_check_config(rendering, tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(rendered_config(rendering))
    code, output = check_config(path)
    assert code == 0, f"`worker-sync check-config` exited {code}:\n{output}"
    assert "OK" in output, output


#: Every values file shipped in helm/ (values.yaml alone is the defaults), found rather than listed, so a new
#: one is checked too.
VALUES_FILES = sorted(CHART_DIR.glob("values*.yaml"))


@pytest.mark.parametrize("values_file", VALUES_FILES, ids=lambda path: path.name)
def test_every_values_file_renders_a_config_that_passes_the_deep_check(render, values_file, tmp_path):
    """`check-config --deep`: every start-up rule of `run` that needs no connection (declared MongoDB
    collections, a MySQL source's `snapshot: false`, the audit node), on what the chart renders."""
    values = {} if values_file.name == "values.yaml" else load_yaml(values_file.read_text())
    path = tmp_path / "config.yaml"
    path.write_text(rendered_config(render(values)))
    code, output = check_config(path, "--deep")
    assert code == 0, f"`worker-sync check-config --deep` on {values_file.name} exited {code}:\n{output}"
    assert "OK (deep" in output, output


def test_the_deep_check_catches_what_production_once_lacked(render, tmp_path):
    """The two defects values-production.yaml had: a MySQL source left to snapshot, an undeclared collection."""
    values = load_yaml((CHART_DIR / "values-production.yaml").read_text())
    values["databases"]["mysql"]["snapshot"] = True
    values["databases"]["mongodb"]["collections"] = {}
    path = tmp_path / "config.yaml"
    path.write_text(rendered_config(render(values)))
    code, output = check_config(path, "--deep")
    assert code == 2, output
    assert "`snapshot: false`" in output and "`audit_db.customers` has no declared fields" in output, output


def test_check_config_rejects_a_broken_render(render, tmp_path):
    """The check above can fail: a link to a node that is not enabled is reported (exit 2)."""
    r = render({"databases": {"mysql": {"enabled": False}}})
    path = tmp_path / "config.yaml"
    path.write_text(rendered_config(r))
    code, output = check_config(path)
    assert code == 2, f"`worker-sync check-config` exited {code}, not 2:\n{output}"
    assert "mysql" in output, output


def test_chart_config_default_matches_config_example():
    example = load_yaml(EXAMPLE.read_text())
    chart_config = load_yaml((CHART_DIR / "values.yaml").read_text())["config"]
    for key, value in chart_config.items():
        expected = example[key]
        if isinstance(expected, dict):
            expected = {k: v for k, v in expected.items() if k not in CHART_OWNED.get(key, set())}
        assert value == expected, f"values.yaml config.{key} differs from config/example.yaml"
    assert set(example) - set(chart_config) == {"databases", "http", "log_level"}, "chart-owned top-level keys"


def test_chart_databases_are_the_seed_ones_in_the_example_shape(default_rendering):
    example = load_yaml(EXAMPLE.read_text())["databases"]
    rendered = load_yaml(rendered_config(default_rendering))["databases"]
    assert set(rendered) == set(example)
    for engine, node in rendered.items():
        assert {k: node[k] for k in SEED_DATABASE_KEYS} == {k: example[engine][k] for k in SEED_DATABASE_KEYS}
        assert set(node) <= set(example[engine]) | {"password_file"}, f"{engine}: keys the example lacks"


def test_passwords_and_tls_files_point_into_the_secrets_volume(production_rendering):
    config = load_yaml(rendered_config(production_rendering))
    head = production_rendering.one("RayCluster")["spec"]["headGroupSpec"]["template"]["spec"]
    mounts = {m["name"]: m["mountPath"] for m in head["containers"][0]["volumeMounts"]}
    projected = next(v for v in head["volumes"] if v["name"] == "secrets")["projected"]["sources"]
    paths = {f"{mounts['secrets']}/{item['path']}" for s in projected for item in s["secret"]["items"]}
    named = {config["audit"]["signing_key_file"], config["audit"]["encryption_key_file"], config["http"]["token_file"]}
    for node in config["databases"].values():
        named.add(node["password_file"])
        named.update(v for k, v in node["tls"].items() if k.endswith("_file"))
    assert named <= paths, named - paths
    assert config["audit"]["checkpoint_export_dir"].startswith(mounts["checkpoints"])


# --- the command lines the chart runs ------------------------------------------------------------------


def chart_command_lines(rendering) -> list[list[str]]:
    lines = [shlex.split(rendering.one("RayJob")["spec"]["entrypoint"])]
    for obj in rendering.objects:
        for _, container, _ in containers(obj):
            if container.get("command") == ["worker-sync"]:
                lines.append(["worker-sync", *container["args"]])
    return lines


def test_chart_runs_the_seed_commands(default_rendering):
    commands = sorted({line[1] for line in chart_command_lines(default_rendering)})
    assert commands == ["backup", "cleanup", "init", "migrate", "probe", "run", "verify"]


@pytest.mark.parametrize("command", ["run", "init", "migrate", "backup", "cleanup", "probe", "verify"])
def test_chart_command_lines_parse_with_the_cli(rendering, command):
    parser = build_parser()
    for line in chart_command_lines(rendering):
        if line[1] == command:
            args = parser.parse_args(line[1:])
            assert args.command == command


# --- what each actor reserves ----------------------------------------------------------------------


def test_actors_reserve_what_values_say_and_the_head_offers_no_cpu(default_rendering, render):
    supervisor = load_yaml(rendered_config(default_rendering))["supervisor"]
    assert (supervisor["actor_cpus"], supervisor["actor_memory_bytes"]) == (0.5, 512 * 1024**2)
    cluster = default_rendering.one("RayCluster")["spec"]
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0", "the head runs only the control plane"
    worker_cpus = float(cluster["workerGroupSpecs"][0]["rayStartParams"]["num-cpus"])
    assert worker_cpus >= supervisor["actor_cpus"], "an actor must fit on a worker, or none is ever placed"
    off = load_yaml(rendered_config(render({"actors": {"cpus": 0, "memory": 0}})))["supervisor"]
    assert (off["actor_cpus"], off["actor_memory_bytes"]) == (0, 0)


def test_actor_resources_are_the_charts_to_set(render, helm):
    with pytest.raises(helm.HelmRenderError, match=r"config\.supervisor\.actor_cpus: set by the chart"):
        render({"config": {"supervisor": {"actor_cpus": 1}}})
    with pytest.raises(helm.HelmRenderError, match=r"actors.cpus \(2\) is more than a worker offers \(num-cpus 1\)"):
        render({"actors": {"cpus": 2}})
