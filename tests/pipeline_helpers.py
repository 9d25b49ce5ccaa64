"""Running the real pipeline (Supervisor, capture actors, applier shards) inside a test."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from actors.harness import Endpoint
from actors.harness.secret_files import write_secret_file
from config import Config, parse_config


def pg_to_mariadb_config(
    pg: Endpoint,
    mariadb: Endpoint,
    tmp_path: Path,
    tables: list[tuple[str, str]],
    *,
    shards: int = 2,
    reverse: bool = False,
    ray_address: str | None = None,
    decoder: str = "wal2json",
) -> Config:
    """A config linking the two harness databases; ``reverse`` makes MariaDB the source."""
    text = pg_to_mariadb_config_text(
        pg, mariadb, tmp_path, tables, shards=shards, reverse=reverse, ray_address=ray_address, decoder=decoder
    )
    return parse_config(text, source="test config")


def pg_to_mariadb_config_text(
    pg: Endpoint,
    mariadb: Endpoint,
    tmp_path: Path,
    tables: list[tuple[str, str]],
    *,
    shards: int = 2,
    reverse: bool = False,
    ray_address: str | None = None,
    audit: str = "  enabled: false",
    decoder: str = "wal2json",
) -> str:
    """The YAML of :func:`pg_to_mariadb_config`; ``audit`` is the body of its `audit:` section."""
    # Least privilege: the source node connects as the capture user, the target as the apply user.
    pg_user = pg.apply if reverse else pg.capture
    mariadb_user = mariadb.capture if reverse else mariadb.apply
    pg_password = write_secret_file(tmp_path, "pg-password", pg_user.password)
    mariadb_password = write_secret_file(tmp_path, "mariadb-password", mariadb_user.password)
    source, target = ("mysql", "postgresql") if reverse else ("postgresql", "mysql")
    table_lines = "\n".join(f"      - {{source: {s}, target: {t}}}" for s, t in tables)
    text = f"""
databases:
  postgresql:
    host: {pg.host}
    port: {pg.port}
    database: {pg.database}
    username: {pg_user.user}
    password_file: {pg_password}
    slot_name: ws_{pg.database}
    decoder: {decoder}
    tls: {{mode: disable}}
  mysql:
    host: {mariadb.host}
    port: {mariadb.port}
    database: {mariadb.database}
    username: {mariadb_user.user}
    password_file: {mariadb_password}
    tls: {{mode: disable}}
links:
  - name: test-link
    source: {source}
    target: {target}
    tables:
{table_lines}
audit:
{audit}
supervisor:
  applier_shards: {shards}
  state_dir: {tmp_path / "state"}
  restart_backoff_initial_s: 0.5
  restart_backoff_max_s: 2
  {"ray_address: " + ray_address if ray_address else ""}
http:
  token_env: null
"""
    return text


@contextmanager
def running(config: Config) -> Iterator[object]:
    """A Supervisor looping in a thread; drained and its actors killed on exit."""
    import ray

    from actors.preflight import check_audit, check_groups, check_routes
    from supervisor import Supervisor

    supervisor = Supervisor(config)
    check_routes(config, supervisor.routes)  # as `worker-sync run` does before starting anything
    check_audit(config)
    check_groups(config)
    supervisor.start()
    failures: list[BaseException] = []

    def loop() -> None:
        try:
            supervisor.run()
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=loop, name="supervisor", daemon=True)
    thread.start()
    try:
        yield supervisor
    finally:
        supervisor.stop_requested.set()
        thread.join(timeout=60)
        for state in supervisor.streams.values():
            ray.kill(state.actor)
        for shard in supervisor.shards:
            ray.kill(shard.actor)
        if supervisor.audit is not None:
            ray.kill(supervisor.audit.actor)
    if failures:
        raise failures[0]


@contextmanager
def serving(supervisor, token: str) -> Iterator[str]:
    """The supervisor's HTTP port (as `worker-sync run` serves it) on a free port; yields its base URL."""
    from actors.http import StatusServer

    server = StatusServer(
        "127.0.0.1",
        0,
        status=supervisor.status,
        healthy=supervisor.healthy,
        ready=supervisor.ready,
        token=token,
        control=supervisor,
    )
    server.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()


def unreachable_config(tmp_path: Path, password: str) -> Path:
    """A valid config whose PostgreSQL and MariaDB nodes listen nowhere (port 1), its one link `l` between
    them, and ``password`` in a password file: for "cannot reach" paths that must never print it."""
    secret = tmp_path / "pw"
    secret.write_text(password)
    path = tmp_path / "down.yaml"
    node = f"host: 127.0.0.1, port: 1, database: d, username: u, password_file: {secret}, tls: {{mode: disable}}"
    path.write_text(
        f"""
databases:
  postgresql: {{{node}}}
  mysql: {{{node}}}
links: [{{name: l, source: postgresql, target: mysql, tables: [{{source: public.t, target: d.t}}]}}]
audit: {{enabled: false}}
"""
    )
    return path
