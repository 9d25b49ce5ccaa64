"""Throwaway local PostgreSQL and MariaDB servers for tests and `worker-sync demo`.

    with local_servers(tmp_dir) as (pg, mariadb):
        with pg.connect("capture") as conn: ...

No pytest in here: the fixtures live in tests/fix_servers.py.
"""

from actors.harness.endpoint import Credentials, Endpoint
from actors.harness.errors import HarnessError
from actors.harness.local import local_servers, start_together
from actors.harness.mariadb import LocalMariaDB
from actors.harness.postgres import LocalPostgres

__all__ = [
    "Credentials",
    "Endpoint",
    "HarnessError",
    "LocalMariaDB",
    "LocalPostgres",
    "local_servers",
    "start_together",
]
