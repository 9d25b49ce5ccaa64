"""Servers go away with their owner: on stop, on Ctrl-C, on SIGTERM, and when the owner is SIGKILLed."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

from actors.harness import HarnessError, LocalMariaDB, LocalPostgres, homes
from tests.waiting import wait_until

pytestmark = pytest.mark.slow

DRIVER = Path(__file__).with_name("serve_local.py")


def _status(pid: int) -> dict[str, str]:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def exited(pid: int) -> bool:
    """Gone, or a zombie whose threads have all exited. A multi-threaded server's main thread can be a
    zombie while other threads still hold its sockets open."""
    status = _status(pid)
    return not status or (status["State"].startswith("Z") and status["Threads"].strip() == "1")


def processes_in(base: Path) -> dict[int, str]:
    """Live processes whose working directory or command line is under `base` (PostgreSQL backends rename
    themselves but keep the data directory as working directory; so does mariadbd)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue  # gone meanwhile, or exiting (then exited() tells when it is done)
        if str(base) in cmdline or cwd == str(base) or cwd.startswith(f"{base}/"):
            found[int(entry.name)] = cmdline.strip()
    return found


def all_exited(base: Path, pids: Iterable[int]) -> bool:
    return not processes_in(base) and all(exited(pid) for pid in pids)


@pytest.mark.postgresql
def test_stop_leaves_no_process_nor_data_and_long_base_dirs_work(tmp_path: Path) -> None:
    base = tmp_path / ("deep_" * 20)  # a socket path under here would exceed the ~107 byte limit
    with LocalPostgres(base) as pg:
        home = pg.home
        assert len(str(pg.socket_dir / f".s.PGSQL.{pg.port}.lock")) < 100
        assert (pg.socket_dir / f".s.PGSQL.{pg.port}").is_socket()
        with pg.endpoint.connect("capture") as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        running = processes_in(home)
        assert pg.pid in running
        assert len(running) >= 2  # postmaster and its background processes
    assert all_exited(home, running)
    assert not home.exists()
    assert "database system is shut down" in pg.log_path.read_text()


@pytest.mark.mariadb
def test_stop_leaves_no_mariadb_process_nor_data(tmp_path: Path) -> None:
    with LocalMariaDB(tmp_path) as mariadb:
        home = mariadb.home
        mariadb.endpoint.connect("apply").close()
        running = processes_in(home)
        assert mariadb.pid in running
        assert not mariadb.init_file.exists()  # held the root password only until start-up
    assert all_exited(home, running)
    assert not home.exists()
    assert "Shutdown complete" in mariadb.log_path.read_text()


@pytest.mark.postgresql
def test_keep_data_keeps_the_home_and_the_sweep_spares_it(tmp_path: Path) -> None:
    with LocalPostgres(tmp_path, keep_data=True) as pg:
        home = pg.home
    try:
        assert (home / "data" / "PG_VERSION").exists()
        assert home not in homes.sweep_stale_homes()
        assert home.exists()
    finally:
        shutil.rmtree(home)


def _start_driver(base: Path) -> tuple[subprocess.Popen[str], list[tuple[int, Path]]]:
    proc = subprocess.Popen(
        [sys.executable, str(DRIVER)],
        env={**os.environ, "WS_BASE_DIR": str(base)},
        cwd="/",
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # bounded by the harness's own start timeout
    if not line.startswith("ready"):
        proc.kill()
        pytest.fail(f"driver did not start the servers: {line!r}, exit {proc.wait()}")
    _, pg_port, pg_home, mariadb_port, mariadb_home = line.split()
    return proc, [(int(pg_port), Path(pg_home)), (int(mariadb_port), Path(mariadb_home))]


def _nothing_listens(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.postgresql
@pytest.mark.mariadb
@pytest.mark.parametrize(
    ("sig", "clean"),
    [(signal.SIGINT, True), (signal.SIGTERM, True), (signal.SIGKILL, False)],
    ids=["ctrl-c", "sigterm", "sigkill-parent-death"],
)
def test_servers_stop_when_their_owner_is_signalled(tmp_path: Path, sig: signal.Signals, clean: bool) -> None:
    proc, servers = _start_driver(tmp_path)
    try:
        running = {home: processes_in(home) for _, home in servers}
        assert all(running.values())
        proc.send_signal(sig)
        assert proc.wait(timeout=60) == -sig  # SIGINT and SIGTERM still end the process by that signal
        for home, pids in running.items():
            wait_until(
                lambda home=home, pids=pids: all_exited(home, pids),
                timeout_s=30,
                what=f"servers in {home} to exit after {sig.name}",
            )
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert processes_in(tmp_path) == {}
    for port, _ in servers:
        assert _nothing_listens(port)
    pg_log = (tmp_path / "postgresql" / "server.log").read_text()
    mariadb_log = (tmp_path / "mariadb" / "server.log").read_text()
    if clean:  # stopped by the harness, in order, and cleaned up
        assert "received fast shutdown request" in pg_log
        assert "Shutdown complete" in mariadb_log
        assert not any(home.exists() for _, home in servers)
    else:  # stopped by the kernel's parent-death signal; nobody cleaned up: the next start sweeps
        assert "received immediate shutdown request" in pg_log
        assert "Shutdown complete" not in mariadb_log
        assert all(homes.is_stale(home) for _, home in servers)
        swept = homes.sweep_stale_homes()
        assert {home for _, home in servers} <= set(swept)
        assert not any(home.exists() for _, home in servers)


@pytest.mark.postgresql
def test_a_server_that_cannot_start_reports_its_log(tmp_path: Path) -> None:
    server = LocalPostgres(tmp_path, settings={"shared_buffers": "lots"})
    with pytest.raises(HarnessError) as failed:
        server.start()
    message = str(failed.value)
    assert "postgresql exited" in message
    assert 'invalid value for parameter "shared_buffers"' in message  # from the server log's tail
    [home] = re.findall(r"data and sockets in (\S+)", server.log_path.read_text())
    assert processes_in(Path(home)) == {}
    assert not Path(home).exists()
