"""The stage the Worker-Sync benches that run `worker-sync run` share: throwaway PostgreSQL and MariaDB
servers and a Ray node of the bench's own, whose processes (and through them the actors) import this tree's
code."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from actors.harness import Endpoint, local_servers
from actors.harness.ray_cluster import LocalRayCluster, local_ray_cluster
from bench.report import say

if TYPE_CHECKING:
    from config.model import Audit

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Stage:
    tmp: Path
    pg: Endpoint
    mariadb: Endpoint
    cluster: LocalRayCluster
    #: Seconds `ray start --head` took (reported apart from what the benches time).
    ray_start_s: float


@contextmanager
def servers_and_ray(prefix: str, ray_cpus: int = 2) -> Iterator[Stage]:
    """Everything is stopped and removed on exit (Ctrl-C included)."""
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp_name:
        tmp = Path(tmp_name)
        say(f"starting throwaway PostgreSQL and MariaDB in {tmp} ...")
        with local_servers(tmp / "servers") as (pg, mariadb):
            say(f"starting a Ray node of our own (ray start --head --num-cpus={ray_cpus}) ...")
            began = time.monotonic()
            with local_ray_cluster(workers=0, head_cpus=ray_cpus, env=env) as cluster:
                yield Stage(tmp, pg, mariadb, cluster, round(time.monotonic() - began, 2))


def signed_audit_log(pg: Endpoint, role: str, tmp: Path, prefix: str) -> Audit:
    """Audit settings for a bench's link: the signed log in PostgreSQL ``pg`` (schema ``ws_audit_PREFIX``, granted
    to ``role``, the account the link uses there), a fresh signing key file and a checkpoint directory in ``tmp``."""
    from nacl.signing import SigningKey

    from actors.engines.postgresql.audit_store import create_schema
    from config.model import Audit

    schema = f"ws_audit_{prefix}"
    with pg.connect("admin") as admin:
        create_schema(admin, schema, role)
    key = tmp / f"audit-{prefix}.key"
    key.write_text(bytes(SigningKey.generate()).hex())
    key.chmod(0o600)
    return Audit(schema=schema, signing_key_file=str(key), checkpoint_export_dir=str(tmp / f"checkpoints-{prefix}"))
