"""Audit log throughput: entries/s appended to the real PostgreSQL store, and entries/s verified from it.

    python bench/audit_rate.py [--entries 100000] [--batch 2000] [--repeat 3]

Starts a throwaway PostgreSQL (actors.harness.LocalPostgres), creates the audit schema, and times:
- `build`: AuditLog.add alone (entry encoding, leaf hash, frontier, a signed checkpoint every 10,000 entries and
  one of each batch's head): the core's ceiling;
- `append`: AuditLog.add + AuditStore.append in batches (binary COPY), as the apply role, one transaction per batch
  holding its entries and the checkpoint that seals them;
- `verify`: streaming the whole store back and running the verifier (hashes, chain, roots, signatures);
- `restart`: AuditStore.resume (the frontier stored with the last checkpoint) against reading every leaf;
- `actor`: the AuditChain Ray actor as the supervisor feeds it: encoded batches of captured changes, up
  to 20,000 per call, one call at a time; each call decodes, skips what it stored before, hashes, COPYs
  with the checkpoint that seals the batch, and appends the leaf hashes to the export directory (a signed
  note every 10,000 entries). This is the figure the pipeline can rely on (issue: at least 50,000 entries/s).
Each figure is the median of --repeat runs on a fresh schema. Writes bench/results/audit_rate.{json,png}.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nacl.signing import SigningKey

from actors.core.audit import merkle
from actors.core.audit.entries import AuditEntry, change_entry
from actors.core.audit.log import AuditLog
from actors.core.audit.verify import verify_log
from actors.core.events import ChangeEvent, Op, Position
from actors.engines.postgresql.audit_store import AuditStore, create_schema
from actors.harness import Endpoint, LocalPostgres
from bench import report

#: Entries of a last, smaller batch appended before the restart is timed.
TAIL = 1_500


def drafts(n: int) -> list[AuditEntry]:
    """Entries for n typical row changes (an 8-column row), built before the clock starts."""
    return [
        change_entry(
            ChangeEvent(
                node="pg1",
                engine="postgresql",
                namespace="public.orders",
                op=Op.UPDATE,
                key={"id": i},
                before={"id": i},
                after={"id": i, "customer": f"c{i % 977}", "status": "paid", "total": i * 3, "note": "x" * 40},
                commit_time_us=1_700_000_000_000_000 + i,
                txid=str(i // 10),
                position=Position(order=i.to_bytes(8, "big"), resume=f"0/{i:X}"),
            )
        )
        for i in range(n)
    ]


def events(n: int) -> list[ChangeEvent]:
    return [decode_entry_event(entry) for entry in drafts(n)]


def decode_entry_event(entry: AuditEntry) -> ChangeEvent:
    from actors.core.encoding import decode_event

    return decode_event(entry.payload)


def run_actor(endpoint: Endpoint, schema: str, changes: list[ChangeEvent], tmp: Path) -> float:
    """Entries/s through the AuditChain actor, fed like the supervisor feeds it."""
    import ray

    from actors.audit_chain import AuditChain
    from actors.control.audit_feed import MAX_EVENTS_PER_AUDIT
    from actors.core.batches import Batch
    from actors.core.encoding import encode_batch
    from actors.harness.secret_files import write_secret_file
    from config.model import Audit, PostgresNode, Tls

    with endpoint.connect("admin") as admin:
        create_schema(admin, schema, endpoint.apply.user)
    key_file = tmp / f"{schema}.key"
    key_file.write_text(bytes(SigningKey.generate()).hex())
    key_file.chmod(0o600)
    audit = Audit(
        node="pg",
        schema=schema,
        signing_key_file=str(key_file),
        checkpoint_every_entries=10_000,
        checkpoint_export_dir=str(tmp / f"{schema}-export"),
    )
    node = PostgresNode(
        host=endpoint.host,
        port=endpoint.port,
        database=endpoint.database,
        username=endpoint.apply.user,
        password_file=write_secret_file(tmp, f"{schema}-password", endpoint.apply.password),
        tls=Tls(mode="disable"),
    )
    actor = AuditChain.remote(audit, node, ["pg1"])
    parts = [
        encode_batch(Batch("pg1", seq, changes[i : i + MAX_EVENTS_PER_AUDIT], None))
        for seq, i in enumerate(range(0, len(changes), MAX_EVENTS_PER_AUDIT))
    ]
    ray.get(actor.pid.remote())  # started and resumed
    started = time.perf_counter()
    stored = sum(ray.get(actor.append.remote(part)).entries for part in parts)
    rate = stored / (time.perf_counter() - started)
    ray.get(actor.close.remote())
    ray.kill(actor)
    if stored != len(changes):
        raise RuntimeError(f"the audit actor stored {stored} of {len(changes)} changes")
    return rate


def run_once(endpoint: Endpoint, schema: str, entries: list[AuditEntry], batch: int) -> dict[str, float]:
    key = SigningKey.generate()
    with endpoint.connect("admin") as admin:
        create_schema(admin, schema, endpoint.apply.user)
    started = time.perf_counter()
    AuditLog(key, every_entries=10_000).add(entries)
    build = len(entries) / (time.perf_counter() - started)
    log = AuditLog(key, every_entries=10_000)
    with endpoint.connect("apply") as conn:
        store = AuditStore(conn, schema)
        started = time.perf_counter()
        for i in range(0, len(entries), batch):
            stored, checkpoints = log.add(entries[i : i + batch])
            store.append(stored, checkpoints, log.take_frontiers())
        stored, checkpoints = log.add(entries[:TAIL])  # one more, smaller batch (sealed like every batch)
        store.append(stored, checkpoints, log.take_frontiers())
        append = len(entries) / (time.perf_counter() - started)
        started = time.perf_counter()
        frontier, _ = store.resume()
        resume_s = time.perf_counter() - started
        started = time.perf_counter()
        full_root = merkle.root(store.leaves(frontier.size))
        full_resume_s = time.perf_counter() - started
        if full_root != frontier.root():
            raise RuntimeError("the restart from the stored frontier gives another root than a full rebuild")
        started = time.perf_counter()
        result = verify_log(store.read(), store.checkpoints(), key.verify_key)
        verify = (len(entries) + TAIL) / (time.perf_counter() - started)
    if not result.ok or result.entries != len(entries) + TAIL:
        raise RuntimeError(f"verification failed: {result}")
    return {"build": build, "append": append, "verify": verify, "resume_s": resume_s, "full_resume_s": full_resume_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    import ray

    entries = drafts(args.entries)
    changes = events(args.entries)
    runs: list[dict[str, float]] = []
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        with tempfile.TemporaryDirectory() as tmp, LocalPostgres(Path(tmp)) as server:
            endpoint = server.endpoint
            for i in range(args.repeat):
                run = run_once(endpoint, f"audit_bench_{i}", entries, args.batch)
                run["actor"] = run_actor(endpoint, f"audit_actor_{i}", changes, Path(tmp))
                runs.append(run)
    finally:
        ray.shutdown()
    names = ("build", "append", "verify", "actor", "resume_s", "full_resume_s")
    medians = {name: report.median([run[name] for run in runs]) for name in names}
    report.write(
        "audit_rate",
        {
            "entries": args.entries,
            "batch": args.batch,
            "repeat": args.repeat,
            "entries_per_s": {name: round(medians[name]) for name in ("build", "append", "actor", "verify")},
            # Restart of the audit writer: stored frontier + leaves after the last checkpoint, vs every leaf.
            "restart_s": {"frontier": round(medians["resume_s"], 4), "all_leaves": round(medians["full_resume_s"], 4)},
            "runs": [{name: round(value, 4) for name, value in run.items()} for run in runs],
        },
    )
    report.bar_plot(
        "audit_rate",
        f"Audit log, {args.entries:,} entries, batches of {args.batch:,} (median of {args.repeat})",
        ["AuditLog.add (core only)", "append to PostgreSQL store", "AuditChain actor (Ray calls)", "verify from store"],
        [medians["build"], medians["append"], medians["actor"], medians["verify"]],
        "entries/s",
    )


if __name__ == "__main__":
    main()
