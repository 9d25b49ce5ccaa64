"""A real Ray cluster on this machine: `ray start` head and worker nodes on loopback, in a temp dir of their
own, stopped by PID (`ray stop` would also stop every other Ray on the machine: a test session's, a bench's,
someone else's).

    with local_ray_cluster(workers=2, head_cpus=0) as cluster:
        ... config.supervisor.ray_address = cluster.gcs ...
        cluster.kill_node(raylet_pid)          # a worker node dies (SIGKILL: raylet, its workers and agents)

Used by the multi-node tests (tests/actors/test_ray_job.py, test_ray_gone.py, test_multi_node.py) and by
bench/control_plane.py. No pytest in here.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from actors.harness.errors import HarnessError
from actors.harness.ports import free_port

VENV_BIN = Path(sys.executable).parent
RAY = VENV_BIN / "ray"


def ray_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """As a user with the project's virtualenv active runs `ray` (Ray 2.60 checks tokens: say so)."""
    return {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "RAY_AUTH_MODE": "token",
        "RAY_USAGE_STATS_ENABLED": "0",
        **(extra or {}),
    }


def ray_cli(
    *args: str, timeout_s: float = 120, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`ray ARGS...` from the virtualenv; HarnessError (with its output) when it fails."""
    result = subprocess.run(
        [str(RAY), *args], env=env or ray_env(), cwd=cwd, capture_output=True, text=True, timeout=timeout_s
    )
    if result.returncode != 0:
        raise HarnessError(f"ray {' '.join(args)}: exit {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def node_ports() -> list[str]:
    """Every port a node would otherwise take a fixed default for (several nodes share this machine)."""
    return [
        f"--node-manager-port={free_port()}",
        f"--object-manager-port={free_port()}",
        f"--dashboard-agent-listen-port={free_port()}",
        f"--dashboard-agent-grpc-port={free_port()}",
        f"--metrics-export-port={free_port()}",
        f"--runtime-env-agent-port={free_port()}",
    ]


def processes_of(temp_dir: Path) -> list[int]:
    """PIDs of the processes whose command line names the cluster's temp dir (GCS, raylets, dashboard,
    agents; workers go with their raylet)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if str(temp_dir).encode() in cmdline:
                pids.append(int(entry.name))
    return pids


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its parent to reap it is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def cluster_processes(temp_dir: Path) -> set[int]:
    """Every process of the cluster in ``temp_dir``: those naming it (GCS, raylets, dashboard, monitors),
    their descendants (workers, the agents, whose titles no longer name it) and the Ray client server
    (which names only the GCS address)."""
    pids = set(processes_of(temp_dir))
    ports = set()
    for pid in pids:
        for arg in _cmdline(pid):
            if arg.startswith(b"--gcs_server_port="):
                ports.add(arg.split(b"=", 1)[1])
    if ports:
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                args = _cmdline(int(entry.name))
                if b"ray.util.client.server" in args and any(
                    a.startswith(b"--address=") and a.rsplit(b":", 1)[-1] in ports for a in args
                ):
                    pids.add(int(entry.name))
    return pids | children_of(pids)


def _cmdline(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []


def stop_cluster(temp_dir: Path, signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGKILL)) -> None:
    """End every process of the cluster living in ``temp_dir`` (see :func:`cluster_processes`), by PID.
    The processes are listed before the first signal: a raylet's agents outlive it (reparented, no longer
    findable as its children) and ignore SIGTERM."""
    members: set[int] = set()
    for sig in signals:
        members = {pid for pid in members | cluster_processes(temp_dir) if _alive(pid)}
        for pid in members:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in members) and time.monotonic() < deadline:
            time.sleep(0.2)


def parent_of(pid: int) -> int | None:
    """The parent PID of ``pid`` (from /proc/PID/stat), None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def children_of(pids: set[int]) -> set[int]:
    """Every live process whose parent (at any depth) is one of ``pids`` (those excluded)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            parent = parent_of(int(entry.name))
            if parent is not None:
                parents[int(entry.name)] = parent
    found: set[int] = set()
    frontier = set(pids)
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier and child not in found} - pids
        found |= frontier
    return found


@dataclass
class LocalRayCluster:
    """A running `ray start` cluster: its GCS address (a config's `supervisor.ray_address`), dashboard URL
    (the state API's address) and temp dir."""

    gcs: str
    dashboard: str
    temp_dir: Path
    env: dict[str, str] = field(default_factory=ray_env)

    def nodes(self) -> list[dict]:
        """The state API's nodes (`ray list nodes`), alive or dead."""
        listed = ray_cli("list", "nodes", "--address", self.dashboard, "--format", "json", env=self.env).stdout
        return json.loads(listed)

    def alive_nodes(self) -> list[dict]:
        return [node for node in self.nodes() if node["state"] == "ALIVE"]

    def actors(self) -> list[dict]:
        """The state API's actors with details (pid, node_id, class_name, name, state), alive or dead: through
        `ray list actors` (the state API asks for the cluster's token, which `ray_env` tells the CLI to use)."""
        listed = ray_cli(
            "list", "actors", "--address", self.dashboard, "--detail", "--format", "json", "--limit", "10000",
            env=self.env,
        )  # fmt: skip
        return json.loads(listed.stdout)

    def raylets(self) -> list[int]:
        """PIDs of the cluster's raylets (one per node)."""
        return sorted(pid for pid in processes_of(self.temp_dir) if _cmdline(pid)[0].endswith(b"/raylet"))

    def raylet_of(self, pid: int) -> int | None:
        """The raylet whose descendant ``pid`` is (a worker process: the node it runs on), or None."""
        raylets = set(self.raylets())
        while pid is not None and pid > 1:
            if pid in raylets:
                return pid
            pid = parent_of(pid)  # type: ignore[assignment]
        return None

    def kill_node(self, raylet_pid: int) -> list[int]:
        """That node dies at once: SIGKILL to its raylet and every process under it (its workers, its
        dashboard and runtime-env agents). Not by process group: `ray start` leaves every node of this
        machine's cluster in the group of whoever ran it (the test itself). Returns the PIDs signalled."""
        members = {raylet_pid} | children_of({raylet_pid})
        for pid in sorted(members):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return sorted(members)

    def stop(self) -> None:
        stop_cluster(self.temp_dir)


def _wait(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise HarnessError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(0.2)


@contextmanager
def local_ray_cluster(
    workers: int = 1,
    *,
    head_cpus: int = 1,
    worker_cpus: int = 1,
    env: dict[str, str] | None = None,
    join_timeout_s: float = 60,
    head_resources: dict[str, float] | None = None,
) -> Iterator[LocalRayCluster]:
    """A head and ``workers`` worker nodes on loopback, each with its own ports; stopped by PID on exit.
    ``env`` adds variables for `ray start` (e.g. Ray system settings as ``RAY_<name>``); ``head_resources``
    are custom resources only the head offers (as the chart's head offers `worker-sync-supervisor`)."""
    temp_dir = Path(tempfile.mkdtemp(prefix="wsray", dir="/tmp"))  # short: Ray's socket paths must fit
    gcs = f"127.0.0.1:{free_port()}"
    dashboard = f"http://127.0.0.1:{free_port()}"
    cluster = LocalRayCluster(gcs, dashboard, temp_dir, ray_env(env))
    try:
        ray_cli(
            "start",
            "--head",
            "--node-ip-address=127.0.0.1",
            f"--port={gcs.rsplit(':', 1)[1]}",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={dashboard.rsplit(':', 1)[1]}",
            f"--ray-client-server-port={free_port()}",
            f"--num-cpus={head_cpus}",
            *([f"--resources={json.dumps(head_resources)}"] if head_resources else []),
            f"--temp-dir={temp_dir}",
            "--disable-usage-stats",
            *node_ports(),
            env=cluster.env,
        )
        for _ in range(workers):
            ray_cli(
                "start",
                f"--address={gcs}",
                "--node-ip-address=127.0.0.1",
                f"--num-cpus={worker_cpus}",
                *node_ports(),
                env=cluster.env,
            )
        _wait(lambda: len(cluster.alive_nodes()) == 1 + workers, join_timeout_s, f"{1 + workers} nodes to join")
        yield cluster
    finally:
        stop_cluster(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)
