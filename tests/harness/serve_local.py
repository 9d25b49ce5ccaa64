"""Run local_servers() in $WS_BASE_DIR until signalled: the process test_lifecycle interrupts and kills.

The base directory comes by environment, not argv, so that only the servers (not this driver) mention it.
Prints one line when the servers accept connections: `ready <pg port> <pg home> <mariadb port> <mariadb home>`.
"""

from __future__ import annotations

import os
import signal

from actors.harness import LocalMariaDB, LocalPostgres, start_together


def main() -> None:
    base = os.environ["WS_BASE_DIR"]
    pg, mariadb = LocalPostgres(f"{base}/postgresql"), LocalMariaDB(f"{base}/mariadb")
    try:
        start_together(pg, mariadb)
        print(f"ready {pg.port} {pg.home} {mariadb.port} {mariadb.home}", flush=True)
        while True:
            signal.pause()
    finally:
        mariadb.stop()
        pg.stop()


if __name__ == "__main__":
    main()
