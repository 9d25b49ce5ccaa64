"""A restart reads the Merkle frontier stored at the last checkpoint plus the leaves after it, not every leaf."""

from __future__ import annotations

from nacl.signing import SigningKey

from actors.core.audit import merkle
from actors.core.audit.entries import change_entry
from actors.core.audit.log import AuditLog
from actors.core.audit.verify import verify_log
from actors.engines.postgresql.audit_store import AuditStore, create_schema
from actors.harness import Endpoint
from tests.audit.conftest import SCHEMA, SEED, event

N = 20_000


def _store_log(store: AuditStore, n: int, tail: int) -> tuple[list[bytes], int]:
    """n entries in batches of 1,000, a checkpoint (and frontier) every 3,000, then ``tail`` unsigned entries."""
    log = AuditLog(SigningKey(SEED), every_entries=3_000)
    leaves: list[bytes] = []
    for lo in range(0, n + tail, 1_000):
        hi = min(lo + 1_000, n + tail)
        entries, checkpoints = log.add(change_entry(event(i)) for i in range(lo, hi))
        store.append(entries, checkpoints, log.take_frontiers())
        leaves.extend(e.leaf for e in entries)
    return leaves, log.size


def test_restart_gives_the_full_rebuild_root_from_the_frontier_and_verify_still_checks_everything(
    fresh_pg_db: Endpoint,
) -> None:
    with fresh_pg_db.connect("admin") as admin:
        create_schema(admin, SCHEMA, fresh_pg_db.apply.user)
        with fresh_pg_db.connect("apply") as conn:
            store = AuditStore(conn, SCHEMA)
            leaves, size = _store_log(store, N, 500)
            frontier, last = store.resume()
            assert (frontier.size, frontier.root(), last) == (size, merkle.root(leaves), leaves[-1])
            assert store._stored_frontier().size == size  # every batch is sealed: no leaf had to be read

            # A leaf before the stored frontier is not read on restart (that is the point), but verify reads all.
            with admin.transaction():
                admin.execute(f"ALTER TABLE {SCHEMA}.entries DISABLE TRIGGER ALL")
                admin.execute(f"UPDATE {SCHEMA}.entries SET leaf = %s WHERE seq = 10", (bytes(32),))
                admin.execute(f"ALTER TABLE {SCHEMA}.entries ENABLE TRIGGER ALL")
            assert store.resume()[0].root() == merkle.root(leaves)
            report = verify_log(store.read(), store.checkpoints(), SigningKey(SEED).verify_key)
            assert report.finding is not None and report.finding.seq == 10

            # A forged frontier does not reproduce its checkpoint's root: the restart falls back to every leaf.
            with admin.transaction():
                admin.execute(f"ALTER TABLE {SCHEMA}.frontiers DISABLE TRIGGER ALL")
                admin.execute(f"UPDATE {SCHEMA}.frontiers SET hashes = %s WHERE size = %s", (bytes(32 * 5), size))
                admin.execute(f"ALTER TABLE {SCHEMA}.frontiers ENABLE TRIGGER ALL")
            assert store._stored_frontier().size == 0
            leaves[10] = bytes(32)  # the full scan now reads the tampered leaf
            assert store.resume()[0].root() == merkle.root(leaves)
