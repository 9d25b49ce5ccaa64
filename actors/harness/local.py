"""Both servers at once, for the test session and `worker-sync demo`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path

from actors.harness.endpoint import Endpoint
from actors.harness.mariadb import LocalMariaDB
from actors.harness.postgres import LocalPostgres
from actors.harness.server import LocalServer


def start_together(*servers: LocalServer) -> list[Endpoint]:
    """Start servers with their slow set-up in parallel; the processes are launched from this thread."""
    try:
        with ThreadPoolExecutor(max_workers=len(servers)) as pool:
            for future in [pool.submit(server.prepare) for server in servers]:
                future.result()
        for server in servers:
            server.launch()
        for server in servers:
            server.wait_ready()
        return [server.provision() for server in servers]
    except BaseException:
        for server in servers:
            server.stop()
        raise


@contextmanager
def local_servers(base_dir: str | os.PathLike[str]) -> Iterator[tuple[Endpoint, Endpoint]]:
    """A PostgreSQL and a MariaDB (logs in `base_dir`/postgresql and `base_dir`/mariadb), stopped on exit."""
    base = Path(base_dir)
    pg = LocalPostgres(base / "postgresql")
    mariadb = LocalMariaDB(base / "mariadb")
    with ExitStack() as stack:
        stack.callback(pg.stop)
        stack.callback(mariadb.stop)
        pg_endpoint, mariadb_endpoint = start_together(pg, mariadb)
        yield pg_endpoint, mariadb_endpoint
